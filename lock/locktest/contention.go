package locktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// 64 sessions race for one entity on a file database with a pool of many
// connections: exactly one wins, every other gets ErrHeld naming the winner,
// and nothing else (no SQLITE_BUSY) reaches a caller.
func testExactlyOneWinner(t *testing.T, h *harness) {
	const n = 64
	m := h.open(t)
	// 64 racers share 16 connections: as many as the race needs, without
	// taking 64 of a PostgreSQL server's connections at once.
	m.DB().SetMaxOpenConns(16)
	start := make(chan struct{})
	var (
		wg      sync.WaitGroup
		winners atomic.Int32
		results = make([]error, n)
		won     = make([]lock.Lease, n)
	)
	for i := range n {
		s := mustSession(t, m, fmt.Sprintf("session-%02d", i))
		wg.Go(func() {
			<-start
			won[i], results[i] = s.TryAcquire(context.Background(), "entity::hot")
			if results[i] == nil {
				winners.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()

	if got := winners.Load(); got != 1 {
		t.Fatalf("%d winners, want exactly 1", got)
	}
	holder, err := m.Holder(t.Context(), "entity::hot")
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range results {
		if err == nil {
			if won[i] != holder {
				t.Errorf("winner's lease %+v differs from Holder %+v", won[i], holder)
			}
			continue
		}
		var he *lock.HeldError
		if !errors.As(err, &he) {
			t.Errorf("session-%02d: got err %v, want a *HeldError", i, err)
		} else if he.Holder != holder {
			t.Errorf("session-%02d: HeldError names %+v, want %+v", i, he.Holder, holder)
		}
	}
}

// Several sessions on a multi-connection pool take turns on a few entities
// with Acquire; a counter incremented without any other protection inside
// each grant shows whether two critical sections ever overlapped.
func testContentionOnSharedPool(t *testing.T, h *harness) {
	const (
		sessions = 8
		entities = 3
		rounds   = 15
	)
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond, Jitter: 0.5}))
	var (
		inside  [entities]atomic.Int32
		counter [entities]int // protected by the lock under test only
		grants  atomic.Int64
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i := range sessions {
		s := mustSession(t, m, fmt.Sprintf("agent-%d", i))
		wg.Go(func() {
			for r := range rounds {
				e := (i + r) % entities
				name := fmt.Sprintf("entity::%d", e)
				if _, err := s.Acquire(ctx, name); err != nil {
					t.Errorf("%s: Acquire(%s): %v", s.ID(), name, err)
					return
				}
				if in := inside[e].Add(1); in != 1 {
					t.Errorf("%d holders inside %s at once", in, name)
				}
				v := counter[e]
				time.Sleep(50 * time.Microsecond) // widen the window for a lost update
				counter[e] = v + 1
				inside[e].Add(-1)
				grants.Add(1)
				if ok, err := s.Release(ctx, name); err != nil || !ok {
					t.Errorf("%s: Release(%s) = %v, %v", s.ID(), name, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counter {
		total += c
	}
	if want := sessions * rounds; total != want || grants.Load() != int64(want) {
		t.Errorf("counters sum to %d with %d grants, want %d (lost updates)", total, grants.Load(), want)
	}
}

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

// Sessions take random overlapping sets of a few entities with AcquireAll,
// from two Managers, in random order: every call either gets its whole set
// or fails with ErrHeld, no entity ever has two holders, and nobody
// deadlocks or sees a database error.
func testAcquireAllOverlappingSets(t *testing.T, h *harness) {
	dsn := h.dsn(t)
	retry := lock.RetryPolicy{MaxRetries: 50, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Jitter: 0.5}
	managers := []*lock.Manager{
		h.openDSN(t, dsn, lock.WithRetry(retry)),
		h.openDSN(t, dsn, lock.WithRetry(retry)),
	}
	const workers, rounds, pool = 8, 25, 5
	var (
		holders [pool]atomic.Int32
		granted atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range workers {
		s := mustSession(t, managers[w%2], fmt.Sprintf("worker-%d", w))
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				var set []string
				var idx []int
				for _, i := range rng.Perm(pool)[:2+rng.IntN(2)] {
					set = append(set, fmt.Sprintf("e::%d", i))
					idx = append(idx, i)
				}
				leases, err := s.AcquireAll(context.Background(), set...)
				if errors.Is(err, lock.ErrHeld) {
					continue
				}
				if err != nil {
					t.Errorf("%s: AcquireAll(%v): %v", s.ID(), set, err)
					return
				}
				if len(leases) != len(set) {
					t.Errorf("%s: got %d leases for %d entities", s.ID(), len(leases), len(set))
				}
				for _, i := range idx {
					if n := holders[i].Add(1); n != 1 {
						t.Errorf("e::%d has %d holders", i, n)
					}
				}
				granted.Add(1)
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
				for _, i := range idx {
					holders[i].Add(-1)
				}
				if _, err := s.ReleaseAll(context.Background()); err != nil {
					t.Errorf("%s: ReleaseAll: %v", s.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if granted.Load() == 0 {
		t.Fatal("no AcquireAll call was granted")
	}
	t.Logf("%d of %d AcquireAll calls granted", granted.Load(), workers*rounds)
}
