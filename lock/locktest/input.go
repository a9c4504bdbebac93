package locktest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

func testBoundaryNamesAreAccepted(t *testing.T, h *harness) {
	m := h.open(t)
	s := mustSession(t, m, strings.Repeat("s", lock.MaxSessionLen))
	for _, entity := range []string{
		strings.Repeat("e", lock.MaxEntityLen),
		"'; DROP TABLE entitylock_leases; --",
		"entité::Ünïcode 🔒",
		"x",
	} {
		l := mustAcquire(t, s, entity)
		got, err := m.Holder(t.Context(), entity)
		if err != nil {
			t.Fatalf("Holder(%q): %v", entity, err)
		}
		if got.Entity != entity || l.Entity != entity {
			t.Errorf("entity not stored byte for byte: got %q and %q, want %q", got.Entity, l.Entity, entity)
		}
	}
}

func testCallsAfterCloseFail(t *testing.T, h *harness) {
	m, err := lock.Open(t.Context(), h.dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	s := mustSession(t, m, "session-a")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]func() error{
		"Session":       func() error { _, err := m.Session("b"); return err },
		"TryAcquire":    func() error { _, err := s.TryAcquire(t.Context(), "e"); return err },
		"Acquire":       func() error { _, err := s.Acquire(t.Context(), "e"); return err },
		"Extend":        func() error { _, err := s.Extend(t.Context(), "e", time.Second); return err },
		"Release":       func() error { _, err := s.Release(t.Context(), "e"); return err },
		"ReleaseAll":    func() error { _, err := s.ReleaseAll(t.Context()); return err },
		"Session.Locks": func() error { _, err := s.Locks(t.Context()); return err },
		"Locks":         func() error { _, err := m.Locks(t.Context()); return err },
		"Holder":        func() error { _, err := m.Holder(t.Context(), "e"); return err },
		"ForceRelease":  func() error { _, err := m.ForceRelease(t.Context(), "e"); return err },
		"PurgeExpired":  func() error { _, err := m.PurgeExpired(t.Context()); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, lock.ErrClosed) {
				t.Errorf("got err %v, want ErrClosed", err)
			}
		})
	}
}

func testErrorsNameOperationAndEntity(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "entity::Foo")
	_, err := b.Acquire(t.Context(), "entity::Foo")
	if got, wantPrefix := err.Error(), `lock: acquire "entity::Foo": `; !strings.HasPrefix(got, wantPrefix) {
		t.Errorf("error %q does not start with %q", got, wantPrefix)
	}
}
