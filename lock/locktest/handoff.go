package locktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

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

func testSweeperPurgesExpiredRows(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithSweepInterval(2*time.Millisecond))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	first := mustAcquire(t, a, "e")
	mustAcquire(t, a, "f")
	clk.Advance(time.Minute)
	waitFor(t, "the sweeper", func() bool { return m.Stats().Purged == 2 })
	if got := mustAcquire(t, b, "e"); got.Token <= first.Token {
		t.Errorf("token after sweep = %d, want > %d", got.Token, first.Token)
	}
}

func testStatsAndLogs(t *testing.T, h *harness) {
	clk := newTestClock()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute),
		lock.WithLogger(logger), lock.WithRetry(lock.RetryPolicy{MaxRetries: 1, BaseDelay: time.Millisecond}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	ctx := t.Context()

	mustAcquire(t, a, "e")          // grant
	clk.Advance(time.Second)        //
	mustAcquire(t, a, "e")          // refresh
	b.Acquire(ctx, "e")             // 2 contended attempts, 1 wait
	a.Extend(ctx, "e", time.Second) // extend
	clk.Advance(2 * time.Minute)    //
	mustAcquire(t, b, "e")          // grant, takeover
	b.Release(ctx, "e")             // release
	mustAcquire(t, a, "f")          // grant
	m.ForceRelease(ctx, "f")        // release

	got := m.Stats()
	got.Waits.Buckets = nil
	// On PostgreSQL the wait starts the release listener, whose first
	// wake-up (made for releases it could have missed) may add one refused
	// attempt; it is not a retry.
	contended := int64(2)
	if h.b.Name == "postgres" && got.Contended == 3 {
		contended = 3
	}
	want := lock.Stats{Grants: 3, Refreshes: 1, Contended: contended, Takeovers: 1, Releases: 2, Extends: 1,
		Waits: lock.WaitStats{Count: 1, Total: got.Waits.Total}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if got.Waits.Total <= 0 {
		t.Errorf("Waits.Total = %v, want > 0", got.Waits.Total)
	}
	// b's handle saw its own calls only: one wait (two refusals), one
	// grant that was a takeover, one release.
	gotB := b.Stats()
	gotB.Waits = lock.WaitStats{Count: gotB.Waits.Count}
	wantB := lock.Stats{Grants: 1, Contended: contended, Takeovers: 1, Releases: 1, Waits: lock.WaitStats{Count: 1}}
	if diff := cmp.Diff(wantB, gotB); diff != "" {
		t.Errorf("b.Stats (-want +got):\n%s", diff)
	}
	logs := buf.String()
	for _, msg := range []string{"level=DEBUG msg=\"entitylock: entity held\"", "level=INFO msg=\"entitylock: reclaimed expired lease\""} {
		if !strings.Contains(logs, msg) {
			t.Errorf("logs lack %s:\n%s", msg, logs)
		}
	}
}

func testNothingIsLoggedByDefault(t *testing.T, h *harness) {
	// The default logger discards; this checks no code path writes to the
	// process-wide default logger instead.
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	m := h.open(t, lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "e")
	b.Acquire(t.Context(), "e")
	if buf.Len() != 0 {
		t.Errorf("logged by default:\n%s", buf.String())
	}
}

// A release by another Manager (another process, or on PostgreSQL another
// machine) wakes a waiter: through LISTEN/NOTIFY on PostgreSQL, through the
// watch on the database file on SQLite. Its one-hour backoff and the
// holder's one-hour TTL never run out.
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

// On PostgreSQL a Do whose lease another Manager force-releases learns of it
// from the release's notification, long before its next renewal (20s away).
// On SQLite the file watch that tells it runs only while the Manager has
// waiters (TestWatchTellsDoOfAForceRelease); without, the next renewal finds
// it (DoCancelsWhenLeaseIsForceReleased).
func testDoLosesAtOnceToOtherManagersRelease(t *testing.T, h *harness) {
	if h.b.Name != "postgres" {
		t.Skip("on SQLite, without waiters in its Manager, Do finds the loss at its next renewal")
	}
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithTTL(time.Minute), lock.WithRenewInterval(20*time.Second))
	operator := h.openDSN(t, dsn)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- mustSession(t, m, "worker").Do(context.Background(), "entity::job", func(ctx context.Context, l lock.Lease) error {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		})
	}()
	<-started
	// Released before or after the listener listens: the notification, or
	// the check that follows LISTEN, makes Do renew and find the loss.
	began := time.Now()
	if ok, err := operator.ForceRelease(t.Context(), "entity::job"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("Do = %v; want ErrLeaseLost (ErrNotHeld)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Do not cancelled %v after another Manager's release; its next renewal is 20s away", time.Since(began))
	}
}
