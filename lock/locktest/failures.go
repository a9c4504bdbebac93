package locktest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// The engine's own failures, beside the bad input of
// BadInputIsRejectedAndChangesNothing: a write through a read-only handle,
// and a write that waits longer than the engine allows for a lock another
// transaction holds. Each reaches the caller as the engine's error, within
// about the engine's wait, and leaves the lease and fence tables as they
// were.
func testEngineFailuresChangeNothing(t *testing.T, h *harness) {
	const wait = 300 * time.Millisecond
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn)
	held := mustAcquire(t, mustSession(t, m, "session-a"), "entity::held")
	raw := h.raw(t, dsn)
	before := dumpLeases(t, raw)

	ro, err := lock.New(t.Context(), testkit.ReadOnlyDB(t, dsn))
	if err != nil {
		t.Fatalf("New on a read-only handle: %v", err)
	}
	t.Cleanup(func() { ro.Close() })
	roSession := mustSession(t, ro, "session-ro")

	short := h.openDSN(t, h.b.WithLockWait(t, dsn, wait))
	shortA, shortB := mustSession(t, short, "session-a"), mustSession(t, short, "session-b")
	// blocked runs call while another transaction makes writes wait.
	blocked := func(call func(ctx context.Context) error) func() error {
		return func() error {
			unblock := h.blockLeaseWrites(t, h.raw(t, dsn))
			defer unblock()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang fails here
			defer cancel()
			start := time.Now()
			err := call(ctx)
			if waited := time.Since(start); waited < wait*5/6 || ctx.Err() != nil {
				t.Errorf("returned after %v (ctx %v); want about the %v lock wait", waited, ctx.Err(), wait)
			}
			return err
		}
	}

	tests := []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"read-only, grant", func() error { _, err := roSession.TryAcquire(t.Context(), "entity::new"); return err }, h.b.IsReadOnly},
		{"read-only, release", func() error { _, err := roSession.ReleaseAll(t.Context()); return err }, h.b.IsReadOnly},
		{"writes blocked, grant", blocked(func(ctx context.Context) error { _, err := shortB.TryAcquire(ctx, "entity::new"); return err }), h.b.IsLockTimeout},
		{"writes blocked, takeover", blocked(func(ctx context.Context) error { _, err := shortB.TryAcquire(ctx, "entity::held"); return err }), h.b.IsLockTimeout},
		{"writes blocked, release", blocked(func(ctx context.Context) error { _, err := shortA.Release(ctx, "entity::held"); return err }), h.b.IsLockTimeout},
		{"writes blocked, extend", blocked(func(ctx context.Context) error { _, err := shortA.Extend(ctx, "entity::held", time.Second); return err }), h.b.IsLockTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !tt.want(err) {
				t.Fatalf("got err %v, want the %s engine's error for this failure", err, h.b.Name)
			}
			if diff := cmp.Diff(before, dumpLeases(t, raw)); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
			}
		})
	}
	if got, err := m.Holder(t.Context(), "entity::held"); err != nil || got != held {
		t.Errorf("Holder = %+v, %v; want %+v", got, err, held)
	}
}
