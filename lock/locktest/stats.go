package locktest

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

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
	b.Acquire(ctx, "e")             // 1 wait, at least 2 contended attempts
	a.Extend(ctx, "e", time.Second) // extend
	clk.Advance(2 * time.Minute)    //
	mustAcquire(t, b, "e")          // grant, takeover
	b.Release(ctx, "e")             // release
	mustAcquire(t, a, "f")          // grant
	m.ForceRelease(ctx, "f")        // release

	got := m.Stats()
	got.Waits.Buckets = nil
	// b's one wait was refused at least twice: its first try and the one
	// retry its policy allows. The engine's change feed, started by the
	// wait, may wake it to try once more (PostgreSQL's listener does, when
	// it starts listening, for releases it could have missed); that attempt
	// is refused too and counted, but it is not a retry. Every refusal in
	// m is b's.
	if got.Contended < 2 {
		t.Errorf("Stats().Contended = %d, want at least 2: the first try and one retry", got.Contended)
	}
	contended := got.Contended
	t.Logf("%s: the wait made %d refused attempts", h.b.Name, contended)
	want := lock.Stats{Grants: 3, Refreshes: 1, Contended: contended, Takeovers: 1, Releases: 2, Extends: 1,
		Waits: lock.WaitStats{Count: 1, Total: got.Waits.Total}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if got.Waits.Total <= 0 {
		t.Errorf("Waits.Total = %v, want > 0", got.Waits.Total)
	}
	// b's handle saw its own calls only: one wait (all of m's refusals),
	// one grant that was a takeover, one release.
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
