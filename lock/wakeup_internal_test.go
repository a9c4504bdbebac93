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
// reports the refusal), and the release reaches the waiter's Manager before
// the waiter joins a line: on PostgreSQL its notification; on SQLite
// without a wake file (an in-memory database), the change of data_version
// that the watcher, polling for another waiter, reads. The waiter gets the
// entity at once, not after its backoff of an hour.
func TestWaiterWokenByReleaseElsewhereBeforeItJoins(t *testing.T) {
	type setup struct {
		// open opens a Manager on the test's database.
		open func(opts ...Option) *Manager
		// told reports, from before (the reading of since), whether the
		// release reached waiterM.
		since func(waiterM *Manager) uint64
		told  func(waiterM *Manager, before uint64) bool
	}
	onDSN := func(t *testing.T, dsn string) setup {
		return setup{open: func(opts ...Option) *Manager { return openInternal(t, dsn, opts...) }}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) setup
	}{
		{"sqlite", func(t *testing.T) setup { return onDSN(t, filepath.Join(t.TempDir(), "l.db")) }},
		{"sqlite without a wake file", func(t *testing.T) setup {
			return setup{
				open:  memdbOpener(t),
				since: func(m *Manager) uint64 { return uint64(m.fileWatch.Load().changes.Load()) },
				told:  func(m *Manager, before uint64) bool { return uint64(m.fileWatch.Load().changes.Load()) > before },
			}
		}},
		{"postgres", func(t *testing.T) setup {
			base := os.Getenv("ENTITYLOCK_POSTGRES_DSN")
			if base == "" {
				t.Skip("ENTITYLOCK_POSTGRES_DSN is not set")
			}
			st := onDSN(t, newPostgresSchema(t, base))
			st.since = func(m *Manager) uint64 { return m.queues.woken[wakeBucket("e")].Load() }
			st.told = func(m *Manager, before uint64) bool { return m.queues.woken[wakeBucket("e")].Load() > before }
			return st
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.setup(t)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			h := &onRefusal{entity: "e"}
			waiterM := st.open(WithLogger(slog.New(h)), WithTTL(time.Hour), waitForever)
			other := st.open(WithTTL(time.Hour))
			holder, waiter := sessionOf(t, other, "holder"), sessionOf(t, waiterM, "waiter")
			for _, e := range []string{"e", "x"} {
				if _, err := holder.TryAcquire(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			// Another waiter keeps the change feed going; on PostgreSQL the
			// listener wakes every line once it is registered.
			bystander := acquireInBackground(ctx, sessionOf(t, waiterM, "bystander"), "x")
			t.Cleanup(func() { cancel(); <-bystander })
			if !waitUntil(ctx, func() bool {
				w := waiterM.fileWatch.Load()
				return (w != nil && w.watching.Load()) || waiterM.queues.wokenAll.Load() > 0
			}) {
				t.Fatalf("the change feed did not start: %v", ctx.Err())
			}
			h.fn = func() {
				var before uint64
				if st.since != nil {
					before = st.since(waiterM)
				}
				if ok, err := holder.Release(ctx, "e"); !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
				}
				// Not Fatal: this runs inside the waiter's call, which holds
				// the Manager open.
				if st.told != nil && !waitUntil(ctx, func() bool { return st.told(waiterM, before) }) {
					t.Errorf("the release did not reach the waiter's Manager: %v", ctx.Err())
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
// call that reports an attempt on entity refused.
type onRefusal struct {
	entity string
	armed  atomic.Bool
	fn     func()
}

func (h *onRefusal) Enabled(context.Context, slog.Level) bool { return true }
func (h *onRefusal) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onRefusal) WithGroup(string) slog.Handler            { return h }
func (h *onRefusal) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "entitylock: entity held" {
		return nil
	}
	var entity string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "entity" {
			entity = a.Value.String()
		}
		return entity == ""
	})
	if entity == h.entity && h.armed.CompareAndSwap(true, false) {
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
