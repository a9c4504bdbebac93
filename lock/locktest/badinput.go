package locktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

// Every kind of bad input gets a typed error and leaves the lease and fence
// tables as they were. (The engine's own failures, such as a read-only
// database or a lock held by another transaction, are
// EngineFailuresChangeNothing.)
func testBadInputIsRejectedAndChangesNothing(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now))
	raw := h.raw(t, dsn)
	s := mustSession(t, m, "session-a")
	held := mustAcquire(t, s, "entity::held")
	before := dumpLeases(t, raw)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()

	// A second Manager on the same database, closed before use.
	closed := h.openDSN(t, dsn)
	closedSession := mustSession(t, closed, "session-a")
	closed.Close()

	openErr := func(opts ...lock.Option) func() error {
		return func() error {
			m, err := lock.Open(t.Context(), dsn, opts...)
			if err == nil {
				m.Close()
			}
			return err
		}
	}
	long := strings.Repeat("e", lock.MaxEntityLen+1)
	stale := held
	stale.Token++
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"empty entity", func() error { _, err := s.TryAcquire(t.Context(), ""); return err }, lock.ErrInvalidEntity},
		{"oversized entity", func() error { _, err := s.Acquire(t.Context(), long); return err }, lock.ErrInvalidEntity},
		{"NUL in entity", func() error { _, err := s.TryAcquire(t.Context(), "a\x00b"); return err }, lock.ErrInvalidEntity},
		{"invalid UTF-8 entity", func() error { _, err := s.TryAcquire(t.Context(), "a\xffb"); return err }, lock.ErrInvalidEntity},
		{"extend empty entity", func() error { _, err := s.Extend(t.Context(), "", time.Second); return err }, lock.ErrInvalidEntity},
		{"release NUL entity", func() error { _, err := s.Release(t.Context(), "\x00"); return err }, lock.ErrInvalidEntity},
		{"holder empty entity", func() error { _, err := m.Holder(t.Context(), ""); return err }, lock.ErrInvalidEntity},
		{"force release oversized", func() error { _, err := m.ForceRelease(t.Context(), long); return err }, lock.ErrInvalidEntity},
		{"acquire all, one bad", func() error { _, err := s.AcquireAll(t.Context(), "entity::new", "a\x00"); return err }, lock.ErrInvalidEntity},
		{"acquire all, none", func() error { _, err := s.AcquireAll(t.Context()); return err }, lock.ErrInvalidEntity},
		{"empty session", func() error { _, err := m.Session(""); return err }, lock.ErrInvalidSession},
		{"oversized session", func() error { _, err := m.Session(strings.Repeat("s", lock.MaxSessionLen+1)); return err }, lock.ErrInvalidSession},
		{"NUL in session", func() error { _, err := m.Session("s\x00"); return err }, lock.ErrInvalidSession},
		{"invalid UTF-8 session", func() error { _, err := m.Session("\xc3\x28"); return err }, lock.ErrInvalidSession},
		{"zero extension", func() error { _, err := s.Extend(t.Context(), "entity::held", 0); return err }, lock.ErrInvalidDuration},
		{"negative extension", func() error { _, err := s.Extend(t.Context(), "entity::held", -time.Second); return err }, lock.ErrInvalidDuration},
		{"sub-millisecond extension", func() error { _, err := s.Extend(t.Context(), "entity::held", time.Microsecond); return err }, lock.ErrInvalidDuration},
		{"extend a lease not held", func() error { _, err := s.Extend(t.Context(), "entity::free", time.Second); return err }, lock.ErrNotHeld},
		{"nil do function", func() error { return s.Do(t.Context(), "entity::new", nil) }, lock.ErrInvalidOption},
		{"guard with nil tx", func() error { return m.Guard(t.Context(), nil, held) }, lock.ErrInvalidOption},
		{"guard a stale token", func() error {
			tx, err := raw.BeginTx(t.Context(), nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			return m.Guard(t.Context(), tx, stale)
		}, lock.ErrNotHeld},
		{"cancelled ctx acquire", func() error { _, err := s.TryAcquire(cancelled, "entity::new"); return err }, context.Canceled},
		{"cancelled ctx release", func() error { _, err := s.Release(cancelled, "entity::held"); return err }, context.Canceled},
		{"cancelled ctx purge", func() error { _, err := m.PurgeExpired(cancelled); return err }, context.Canceled},
		{"expired ctx acquire", func() error { _, err := s.Acquire(expired, "entity::new"); return err }, context.DeadlineExceeded},
		{"expired ctx extend", func() error { _, err := s.Extend(expired, "entity::held", time.Hour); return err }, context.DeadlineExceeded},
		{"expired ctx acquire all", func() error { _, err := s.AcquireAll(expired, "entity::new", "entity::other"); return err }, context.DeadlineExceeded},
		{"zero TTL", openErr(lock.WithTTL(0)), lock.ErrInvalidDuration},
		{"negative TTL", openErr(lock.WithTTL(-time.Minute)), lock.ErrInvalidDuration},
		{"renewal interval above TTL", openErr(lock.WithTTL(time.Second), lock.WithRenewInterval(time.Minute)), lock.ErrInvalidDuration},
		{"nil clock", openErr(lock.WithClock(nil)), lock.ErrInvalidOption},
		{"acquire after Close", func() error { _, err := closedSession.TryAcquire(t.Context(), "entity::new"); return err }, lock.ErrClosed},
		{"release all after Close", func() error { _, err := closedSession.ReleaseAll(t.Context()); return err }, lock.ErrClosed},
		{"nil *sql.DB", func() error { _, err := lock.New(t.Context(), nil); return err }, lock.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got err %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(before, dumpLeases(t, raw)); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
			}
		})
	}
}
