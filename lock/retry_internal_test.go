package lock

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A waiter woken by releases that then loses the entity again (to another
// process, say) does not use up its retries: only backoff steps count.
func TestWakeUpsDoNotCountAsRetries(t *testing.T) {
	m, s := waiterOnHeld(t, RetryPolicy{MaxRetries: 1, BaseDelay: time.Hour}, "e")
	var attempts atomic.Int32
	refused := func() error {
		attempts.Add(1)
		return &HeldError{Holder: Lease{Entity: "e", SessionID: "other", ExpiresAt: time.Now().Add(time.Hour)}}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.retry(ctx, refused) }()

	const wakes = 5
	for i := range wakes {
		deadline := time.Now().Add(10 * time.Second)
		for attempts.Load() != int32(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("after %d wake-ups: %d attempts", i, attempts.Load())
			}
			time.Sleep(time.Millisecond)
		}
		m.queues.wake("e")
	}
	for attempts.Load() != wakes+1 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("retry gave up after %d wake-ups with MaxRetries 1: %v", wakes, err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got err %v, want context.Canceled", err)
	}
}

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{BaseDelay: 50 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{0, 50 * time.Millisecond}, {1, 100 * time.Millisecond}, {2, 200 * time.Millisecond},
		{3, 300 * time.Millisecond}, {1000, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := p.delay(tt.n); got != tt.want {
			t.Errorf("delay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	uncapped := RetryPolicy{BaseDelay: time.Second}
	if got := uncapped.delay(10_000); got <= 0 {
		t.Errorf("uncapped delay overflowed: %v", got)
	}
	jittered := RetryPolicy{BaseDelay: 100 * time.Millisecond, Jitter: 0.2}
	for range 1000 {
		if d := jittered.delay(0); d < 80*time.Millisecond || d > 120*time.Millisecond {
			t.Fatalf("jittered delay %v outside ±20%% of 100ms", d)
		}
	}
}

// No policy waits less than MinInterval between attempts, so a zero or tiny
// BaseDelay cannot make a busy loop.
func TestRetryDelayFloor(t *testing.T) {
	for _, p := range []RetryPolicy{
		{MaxRetries: -1},
		{MaxRetries: -1, BaseDelay: time.Nanosecond, Jitter: 1},
		{MaxRetries: -1, BaseDelay: time.Microsecond, MaxDelay: 2 * time.Microsecond},
	} {
		for n := range 40 {
			if d := p.delay(n); d < MinInterval {
				t.Errorf("%+v: delay(%d) = %v; want at least %v", p, n, d, MinInterval)
			}
		}
	}
}

// Retrying forever with no delay polls at most once per MinInterval.
func TestZeroDelayRetryIsNoBusyLoop(t *testing.T) {
	m, err := Open(t.Context(), filepath.Join(t.TempDir(), "l.db"), WithRetry(RetryPolicy{MaxRetries: -1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	holder, _ := m.Session("holder")
	waiter, _ := m.Session("waiter")
	if _, err := holder.TryAcquire(t.Context(), "e"); err != nil {
		t.Fatal(err)
	}
	const window = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), window)
	defer cancel()
	start := time.Now()
	if _, err := waiter.Acquire(ctx, "e"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v; want the deadline", err)
	}
	// One attempt, then one per MinInterval at most (a loaded machine
	// only makes fewer).
	limit := int64(time.Since(start)/MinInterval) + 1
	if got := waiter.Stats().Contended; got > limit {
		t.Errorf("%d attempts in %v; want at most %d", got, time.Since(start), limit)
	}
}

// waiterOnHeld opens a Manager on a new SQLite file with policy, in which
// session "other" holds entities, and returns it with session "waiter".
// The leases are held in the database too, so that the Manager's change
// watcher, which reads the leases of new lines, finds none free and never
// wakes a waiter of a test that tells its attempts' outcomes itself.
func waiterOnHeld(t *testing.T, policy RetryPolicy, entities ...string) (*Manager, *Session) {
	t.Helper()
	m, err := Open(t.Context(), filepath.Join(t.TempDir(), "l.db"), WithRetry(policy))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	other := sessionOf(t, m, "other")
	for _, e := range entities {
		if _, err := other.TryAcquire(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	return m, sessionOf(t, m, "waiter")
}
