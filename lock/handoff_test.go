package lock_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
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
func TestInProcessWaitersAreServedFIFO(t *testing.T) {
	m := mustOpen(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
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
		waitFor(t, "waiter to queue", func() bool { return m.Stats().Contended >= int64(i+1) })
	}
	mustRelease(t, holder, "entity::hot")
	wg.Wait()

	want := []string{"waiter-0", "waiter-1", "waiter-2", "waiter-3", "waiter-4"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("grant order (-want +got):\n%s", diff)
	}
}

func TestSweeperPurgesExpiredRows(t *testing.T) {
	clk := newTestClock()
	m := mustOpen(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithSweepInterval(2*time.Millisecond))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	first := mustAcquire(t, a, "e")
	mustAcquire(t, a, "f")
	clk.Advance(time.Minute)
	waitFor(t, "the sweeper", func() bool { return m.Stats().Purged == 2 })
	if got := mustAcquire(t, b, "e"); got.Token <= first.Token {
		t.Errorf("token after sweep = %d, want > %d", got.Token, first.Token)
	}
}

func TestStatsAndLogs(t *testing.T) {
	clk := newTestClock()
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := mustOpen(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute),
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
	want := lock.Stats{Grants: 3, Refreshes: 1, Contended: 2, Takeovers: 1, Releases: 2, Extends: 1,
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
	wantB := lock.Stats{Grants: 1, Contended: 2, Takeovers: 1, Releases: 1, Waits: lock.WaitStats{Count: 1}}
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

func TestNothingIsLoggedByDefault(t *testing.T) {
	// The default logger discards; this checks no code path writes to the
	// process-wide default logger instead.
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	m := mustOpen(t, lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "e")
	b.Acquire(t.Context(), "e")
	if buf.Len() != 0 {
		t.Errorf("logged by default:\n%s", buf.String())
	}
}

func TestWaitQuantile(t *testing.T) {
	w := lock.WaitStats{Count: 4, Buckets: make([]int64, len(lock.WaitBuckets())+1)}
	w.Buckets[0] = 2 // ≤1ms
	w.Buckets[3] = 1 // ≤10ms
	w.Buckets[len(lock.WaitBuckets())] = 1
	got := []time.Duration{w.Quantile(0.5), w.Quantile(0.75), w.Quantile(1)}
	want := []time.Duration{time.Millisecond, 10 * time.Millisecond, -1}
	if !slices.Equal(got, want) {
		t.Errorf("quantiles = %v, want %v", got, want)
	}
}
