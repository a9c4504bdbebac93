package lock

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// A release told to the Manager while a waiter's attempt runs, before the
// waiter has a line to be woken in, wakes it as it joins: it tries again
// at once, not after its backoff (an hour here).
func TestWaiterWokenByReleaseBeforeItJoins(t *testing.T) {
	held := func(entity string) error {
		return &HeldError{Holder: Lease{Entity: entity, SessionID: "other", ExpiresAt: time.Now().Add(time.Hour)}}
	}
	tests := []struct {
		name string
		// attempt returns attempt n's outcome (n from 0); q is the
		// Manager's lines, which its releases wake.
		attempt func(n int, q *waitQueues) error
		// lineA: the test wakes the line of "a" once a waiter is in it.
		lineA bool
	}{
		{name: "released during the first attempt", attempt: func(n int, q *waitQueues) error {
			if n == 0 {
				q.wake("e")
				return held("e")
			}
			return nil
		}},
		{name: "releases missed during the first attempt", attempt: func(n int, q *waitQueues) error {
			if n == 0 {
				q.wakeAll() // the change feed reconnected
				return held("e")
			}
			return nil
		}},
		{name: "AcquireAll: another entity released during the attempt that finds it held", lineA: true, attempt: func(n int, q *waitQueues) error {
			switch n {
			case 0:
				return held("a")
			case 1:
				q.wake("b")
				return held("b")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := waiterOnHeld(t, RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}, "a", "b", "e")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if tt.lineA {
				go func() {
					for ctx.Err() == nil && !slices.Contains(m.queues.entities(), "a") {
						time.Sleep(time.Millisecond)
					}
					m.queues.wake("a")
				}()
			}
			n := 0
			err := s.retry(ctx, func() error {
				defer func() { n++ }()
				return tt.attempt(n, &m.queues)
			})
			if err != nil {
				t.Fatalf("retry after %d attempts: %v", n, err)
			}
		})
	}
}

// The same through the engines' change feeds: another Manager releases the
// entity while the waiter's first attempt runs (from the log call that
// reports the refusal), and, on PostgreSQL, its notification reaches the
// waiter's Manager before the waiter joins a line. The waiter gets the
// entity at once, not after its backoff of an hour.
func TestWaiterWokenByReleaseElsewhereBeforeItJoins(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "l.db")
			if engine == "postgres" {
				base := os.Getenv("ENTITYLOCK_POSTGRES_DSN")
				if base == "" {
					t.Skip("ENTITYLOCK_POSTGRES_DSN is not set")
				}
				dsn = newPostgresSchema(t, base)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			h := &onRefusal{}
			waiterM, err := Open(ctx, dsn, WithLogger(slog.New(h)),
				WithRetry(RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { waiterM.Close() })
			other, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			holder, _ := other.Session("holder")
			waiter, _ := waiterM.Session("waiter")
			if _, err := holder.TryAcquire(ctx, "e"); err != nil {
				t.Fatal(err)
			}
			feedUp := func() bool { return true }
			told := func(before uint64) bool { return true }
			if engine == "postgres" {
				// The listener wakes every line once it is registered.
				feedUp = func() bool { return waiterM.queues.wokenAll.Load() > 0 }
				told = func(before uint64) bool { return waiterM.queues.woken[wakeBucket("e")].Load() > before }
			}
			waiterM.listen()
			if !waitUntil(ctx, feedUp) {
				t.Fatalf("the change feed did not start: %v", ctx.Err())
			}
			h.fn = func() {
				before := waiterM.queues.woken[wakeBucket("e")].Load()
				if ok, err := holder.Release(ctx, "e"); !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
				}
				// Not Fatal: this runs inside the waiter's call, which holds
				// the Manager open.
				if !waitUntil(ctx, func() bool { return told(before) }) {
					t.Errorf("the release was not told to the waiter's Manager: %v", ctx.Err())
				}
			}
			h.armed.Store(true)
			l, err := waiter.Acquire(ctx, "e")
			if err != nil {
				t.Fatalf("Acquire: %v (the entity was free since the first attempt)", err)
			}
			if h.armed.Load() {
				t.Fatalf("granted %v without a refusal: the test did not set up its case", l)
			}
		})
	}
}

// onRefusal is a slog handler that runs fn once, when armed, at the log
// call of a refused attempt.
type onRefusal struct {
	armed atomic.Bool
	fn    func()
}

func (h *onRefusal) Enabled(context.Context, slog.Level) bool { return true }
func (h *onRefusal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onRefusal) WithGroup(string) slog.Handler            { return h }
func (h *onRefusal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "entitylock: entity held" && h.armed.CompareAndSwap(true, false) {
		h.fn()
	}
	return nil
}

// waitUntil polls cond until it holds (true) or ctx ends (false).
func waitUntil(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}
