package locktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

func testAcquireWaitsForRelease(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	held := mustAcquire(t, a, "entity::Foo")

	got := make(chan error, 1)
	go func() {
		_, err := b.Acquire(t.Context(), "entity::Foo")
		got <- err
	}()
	// b is retrying; releasing lets it through.
	mustRelease(t, a, "entity::Foo")
	if err := <-got; err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	l, err := m.Holder(t.Context(), "entity::Foo")
	if err != nil || l.SessionID != "b" || l.Token <= held.Token {
		t.Fatalf("Holder = %+v, %v; want b with a token above %d", l, err, held.Token)
	}
}

func testAcquireStopsWhenCtxEnds(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "entity::Foo")

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := b.Acquire(ctx, "entity::Foo")
			if !errors.Is(err, tc.want) {
				t.Fatalf("got err %v, want %v", err, tc.want)
			}
		})
	}
}

func testAcquireStopsWhenManagerCloses(t *testing.T, h *harness) {
	m, err := lock.Open(t.Context(), h.dsn(t),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "entity::Foo")
	got := make(chan error, 1)
	go func() {
		_, err := b.Acquire(t.Context(), "entity::Foo")
		got <- err
	}()
	time.Sleep(10 * time.Millisecond) // let b reach its wait; correctness does not depend on it
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("got err %v, want ErrClosed", err)
	}
}

// With a one-hour backoff, Acquire still gets the entity as soon as the
// holder's lease expires: it never waits past the expiry. The clock jumps a
// minute on every reading, so the holder's two-minute lease lapses after a
// few readings and no test time passes.
func testAcquireNeverWaitsPastHolderExpiry(t *testing.T, h *harness) {
	clk := newTestClock()
	jumpy := func() time.Time { clk.Advance(time.Minute); return clk.Now() }
	m := h.open(t, lock.WithClock(jumpy), lock.WithTTL(2*time.Minute),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: 5, BaseDelay: time.Hour}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	held := mustAcquire(t, a, "entity::Foo")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := b.Acquire(ctx, "entity::Foo")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if l.SessionID != "b" || !l.AcquiredAt.After(held.ExpiresAt.Add(-time.Millisecond)) {
		t.Errorf("got %+v, want b's grant at or after %v", l, held.ExpiresAt)
	}
}

func testAcquireRetriesRunOut(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: 3, BaseDelay: time.Millisecond}))
	a := mustSession(t, m, "a")
	held := mustAcquire(t, a, "entity::Foo")

	b := mustSession(t, m, "b")
	start := time.Now()
	_, err := b.Acquire(t.Context(), "entity::Foo")
	var he *lock.HeldError
	if !errors.As(err, &he) || he.Holder != held {
		t.Fatalf("got err %v, want the last *HeldError naming %+v", err, held)
	}
	// 1ms + 2ms + 4ms of backoff at least.
	if elapsed := time.Since(start); elapsed < 7*time.Millisecond {
		t.Errorf("gave up after %v, want at least the 7ms of backoff", elapsed)
	}
}

// Waiters of one Manager are granted the entity in the order they arrived,
// each woken by the previous holder's Release: their one-hour backoff never
// runs out.
func testInProcessWaitersAreServedFIFO(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
	holder := mustSession(t, m, "holder")
	mustAcquire(t, holder, "entity::hot")

	const n = 5
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	for i := range n {
		s := mustSession(t, m, fmt.Sprintf("waiter-%d", i))
		wg.Go(func() {
			if _, err := s.Acquire(context.Background(), "entity::hot"); err != nil {
				t.Errorf("%s: %v", s.ID(), err)
				return
			}
			mu.Lock()
			order = append(order, s.ID())
			mu.Unlock()
			if _, err := s.Release(context.Background(), "entity::hot"); err != nil {
				t.Errorf("%s: release: %v", s.ID(), err)
			}
		})
		// Let waiter i be refused (and join the line) before waiter i+1 starts.
		waitFor(t, "waiter to queue", func() bool { return s.Stats().Contended >= 1 })
	}
	mustRelease(t, holder, "entity::hot")
	wg.Wait()

	want := []string{"waiter-0", "waiter-1", "waiter-2", "waiter-3", "waiter-4"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("grant order (-want +got):\n%s", diff)
	}
}

// A release by another Manager (another process, or on PostgreSQL another
// machine) wakes a waiter: through LISTEN/NOTIFY on PostgreSQL, through the
// wake file on SQLite. Its one-hour backoff and the holder's one-hour TTL
// never run out.
func testWaiterIsWokenByOtherManagersRelease(t *testing.T, h *harness) {
	dsn := h.dsn(t)
	never := lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}
	m1 := h.openDSN(t, dsn, lock.WithTTL(time.Hour))
	m2 := h.openDSN(t, dsn, lock.WithTTL(time.Hour), lock.WithRetry(never))
	holder, waiter := mustSession(t, m1, "holder"), mustSession(t, m2, "waiter")
	held := mustAcquire(t, holder, "entity::hot")

	done := make(chan error, 1)
	go func() {
		_, err := waiter.Acquire(context.Background(), "entity::hot")
		done <- err
	}()
	waitFor(t, "waiter to be refused", func() bool { return m2.Stats().Contended >= 1 })
	// The waiter may still be starting its change feed; a release made
	// before it listens or watches is made up for by the check that
	// follows.
	mustRelease(t, holder, "entity::hot")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken within 10s of the release by another Manager")
	}
	got, err := m1.Holder(t.Context(), "entity::hot")
	if err != nil || got.SessionID != "waiter" || got.Token <= held.Token {
		t.Fatalf("Holder = %+v, %v; want the waiter with a token above %d", got, err, held.Token)
	}
}
