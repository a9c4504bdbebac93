package locktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

// The basic contract of TryAcquire, Release, Extend, Holder and Locks. They
// run on a file database with the default pool, and expire leases by
// moving the injected clock.

func testTryAcquireSucceedsOnFirstCall(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a := mustSession(t, m, "session-a")

	got, err := a.TryAcquire(t.Context(), "entity::Foo")
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	want := lock.Lease{Entity: "entity::Foo", SessionID: "session-a", Token: 1,
		AcquiredAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lease mismatch (-want +got):\n%s", diff)
	}
}

func testSameSessionRefreshKeepsTokenAndAcquiredAt(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a := mustSession(t, m, "session-a")

	first := mustAcquire(t, a, "entity::Foo")
	clk.Advance(40 * time.Second)
	got := mustAcquire(t, a, "entity::Foo")

	want := first
	want.ExpiresAt = clk.Now().Add(time.Minute)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refresh mismatch (-want +got):\n%s", diff)
	}
}

func testTryAcquireFailsWhenHeldByDifferentSession(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	held := mustAcquire(t, a, "entity::Foo")

	for name, try := range map[string]func(context.Context, string) (lock.Lease, error){
		"TryAcquire": b.TryAcquire,
		"Acquire":    b.Acquire,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := try(t.Context(), "entity::Foo")
			if !errors.Is(err, lock.ErrHeld) {
				t.Fatalf("got err %v, want ErrHeld", err)
			}
			var he *lock.HeldError
			if !errors.As(err, &he) {
				t.Fatalf("err %v is not a *HeldError", err)
			}
			if diff := cmp.Diff(held, he.Holder); diff != "" {
				t.Errorf("holder mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func testExpiredLeaseIsReclaimedByNewSession(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	old := mustAcquire(t, a, "entity::Bar")

	clk.Advance(time.Minute - time.Millisecond)
	if _, err := b.TryAcquire(t.Context(), "entity::Bar"); !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("1ms before expiry: got err %v, want ErrHeld", err)
	}
	clk.Advance(time.Millisecond) // now == ExpiresAt: expired
	got, err := b.TryAcquire(t.Context(), "entity::Bar")
	if err != nil {
		t.Fatalf("at expiry: TryAcquire: %v", err)
	}
	if got.Token <= old.Token {
		t.Errorf("reclaimed lease has token %d, want > %d", got.Token, old.Token)
	}
	want := lock.Lease{Entity: "entity::Bar", SessionID: "session-b", Token: got.Token,
		AcquiredAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute), Reclaimed: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reclaimed lease mismatch (-want +got):\n%s", diff)
	}
}

func testReleaseClearsTheLease(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{})) // one attempt: no waiting
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	mustAcquire(t, a, "entity::Baz")

	released, err := a.Release(t.Context(), "entity::Baz")
	if err != nil || !released {
		t.Fatalf("Release = %v, %v; want true, nil", released, err)
	}
	if _, err := b.Acquire(t.Context(), "entity::Baz"); err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	released, err = a.Release(t.Context(), "entity::Baz")
	if err != nil || released {
		t.Fatalf("second Release = %v, %v; want false, nil", released, err)
	}
}

func testReleaseIsNoopForWrongSession(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	held := mustAcquire(t, a, "entity::Qux")

	released, err := b.Release(t.Context(), "entity::Qux")
	if err != nil || released {
		t.Fatalf("b.Release = %v, %v; want false, nil", released, err)
	}
	if _, err := b.Acquire(t.Context(), "entity::Qux"); !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("b.Acquire: got err %v, want ErrHeld", err)
	}
	got, err := m.Holder(t.Context(), "entity::Qux")
	if err != nil {
		t.Fatalf("Holder: %v", err)
	}
	if diff := cmp.Diff(held, got); diff != "" {
		t.Errorf("holder mismatch (-want +got):\n%s", diff)
	}
}

func testReleaseAllRemovesAllSessionLeases(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	mustAcquire(t, a, "entity::One")
	mustAcquire(t, a, "entity::Two")
	clk.Advance(time.Minute) // expired leases are removed too
	mustAcquire(t, a, "entity::Three")
	other := mustAcquire(t, b, "entity::Other")

	n, err := a.ReleaseAll(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("ReleaseAll = %d, %v; want 3, nil", n, err)
	}
	for _, e := range []string{"entity::One", "entity::Two", "entity::Three"} {
		mustAcquire(t, b, e)
	}
	got, err := a.Locks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lock.Lease{}, got); diff != "" {
		t.Errorf("a's leases after ReleaseAll (-want +got):\n%s", diff)
	}
	if l, err := m.Holder(t.Context(), "entity::Other"); err != nil || l != other {
		t.Errorf("b's own lease was touched: Holder = %+v, %v; want %+v", l, err, other)
	}
}

func testExtend(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")

	t.Run("owner", func(t *testing.T) {
		l := mustAcquire(t, a, "entity::Ext")
		got, err := a.Extend(t.Context(), "entity::Ext", 90*time.Second)
		if err != nil {
			t.Fatalf("Extend: %v", err)
		}
		want := l
		want.ExpiresAt = l.ExpiresAt.Add(90 * time.Second)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("extended lease (-want +got):\n%s", diff)
		}
		clk.Advance(2 * time.Minute) // past the TTL, before the extended expiry
		if _, err := b.TryAcquire(t.Context(), "entity::Ext"); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("after extension: got err %v, want ErrHeld", err)
		}
	})
	t.Run("non-owner", func(t *testing.T) {
		mustAcquire(t, a, "entity::Ext2")
		if _, err := b.Extend(t.Context(), "entity::Ext2", time.Minute); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("got err %v, want ErrNotHeld", err)
		}
	})
	t.Run("expired lease is not revived", func(t *testing.T) {
		mustAcquire(t, a, "entity::Ext3")
		clk.Advance(time.Minute)
		if _, err := a.Extend(t.Context(), "entity::Ext3", time.Hour); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("got err %v, want ErrNotHeld", err)
		}
		if _, err := b.TryAcquire(t.Context(), "entity::Ext3"); err != nil {
			t.Errorf("expired lease should be grantable: %v", err)
		}
	})
	t.Run("never acquired", func(t *testing.T) {
		if _, err := a.Extend(t.Context(), "entity::Nope", time.Minute); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("got err %v, want ErrNotHeld", err)
		}
	})
}

func testRefreshOfExpiredOwnLeaseIsANewGrant(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a := mustSession(t, m, "session-a")
	first := mustAcquire(t, a, "entity::Foo")
	clk.Advance(time.Minute)
	got := mustAcquire(t, a, "entity::Foo")
	if got.Token <= first.Token {
		t.Errorf("new grant has token %d, want > %d", got.Token, first.Token)
	}
	want := lock.Lease{Entity: "entity::Foo", SessionID: "session-a", Token: got.Token,
		AcquiredAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Minute), Reclaimed: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A refresh never brings a lease's expiry forward: another handle of the
// session (a Do call, say, in another process with a longer TTL) counts on
// it. Were the refresh through a Manager with a TTL of a second to cut a
// lease of a minute short, another session would be granted the entity
// two seconds later, while the first handle still thinks it holds it.
func testRefreshNeverBringsExpiryForward(t *testing.T, h *harness) {
	for _, tt := range []struct {
		name    string
		refresh func(ctx context.Context, s *lock.Session, entity string) (lock.Lease, error)
	}{
		{"TryAcquire", func(ctx context.Context, s *lock.Session, entity string) (lock.Lease, error) {
			return s.TryAcquire(ctx, entity)
		}},
		{"AcquireAll", func(ctx context.Context, s *lock.Session, entity string) (lock.Lease, error) {
			ls, err := s.AcquireAll(ctx, entity)
			if err != nil {
				return lock.Lease{}, err
			}
			return ls[0], nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			dsn := h.dsn(t)
			long := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
			short := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Second))
			a := mustSession(t, long, "agent")
			granted := mustAcquire(t, a, "entity::Foo")

			clk.Advance(time.Second)
			got, err := tt.refresh(t.Context(), mustSession(t, short, "agent"), "entity::Foo")
			if err != nil {
				t.Fatalf("refresh through the short-TTL Manager: %v", err)
			}
			if diff := cmp.Diff(granted, got); diff != "" {
				t.Errorf("refresh (-want +got):\n%s", diff)
			}

			clk.Advance(2 * time.Second)
			intruder := mustSession(t, short, "intruder")
			if l, err := intruder.TryAcquire(t.Context(), "entity::Foo"); !errors.Is(err, lock.ErrHeld) {
				t.Errorf("another session, 3 s into a lease of a minute: got %+v, %v; want ErrHeld", l, err)
			}
		})
	}
}

// A refresh after the clock stepped back, to before the lease's
// AcquiredAt, is still a refresh: same grant, the expiry kept, and counted
// as a refresh, not as a grant.
func testRefreshAfterClockStepsBack(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Second))
	a := mustSession(t, m, "session-a")
	granted := mustAcquire(t, a, "entity::Foo")
	clk.Advance(-500 * time.Millisecond)
	if diff := cmp.Diff(granted, mustAcquire(t, a, "entity::Foo")); diff != "" {
		t.Errorf("refresh (-want +got):\n%s", diff)
	}
	if st := a.Stats(); st.Grants != 1 || st.Refreshes != 1 {
		t.Errorf("Stats: %d grants, %d refreshes; want 1 and 1", st.Grants, st.Refreshes)
	}
}

func testLocksAndHolderSeeOnlyLiveLeases(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	mustAcquire(t, a, "entity::old")
	clk.Advance(30 * time.Second)
	lb := mustAcquire(t, b, "entity::b")
	la := mustAcquire(t, a, "entity::a")
	clk.Advance(30 * time.Second) // entity::old expires now

	got, err := m.Locks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lock.Lease{la, lb}, got); diff != "" {
		t.Errorf("Manager.Locks (-want +got):\n%s", diff)
	}
	got, err = a.Locks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lock.Lease{la}, got); diff != "" {
		t.Errorf("Session.Locks (-want +got):\n%s", diff)
	}
	if _, err := m.Holder(t.Context(), "entity::old"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("Holder of expired lease: got err %v, want ErrNotHeld", err)
	}
}

// Tokens strictly increase per entity through every way a lease can end.
func testTokenMonotonicity(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	ctx := t.Context()
	const e = "entity::T"

	steps := []struct {
		name string
		end  func(t *testing.T) // ends the current lease on e
		next *lock.Session
	}{
		{"release", func(t *testing.T) { mustRelease(t, a, e) }, b},
		{"expiry takeover", func(t *testing.T) { clk.Advance(2 * time.Minute) }, a},
		{"force release", func(t *testing.T) { mustForce(t, m, e) }, b},
		{"purge", func(t *testing.T) {
			clk.Advance(2 * time.Minute)
			// The lease on e and the one on entity::other.
			if n, err := m.PurgeExpired(ctx); err != nil || n != 2 {
				t.Fatalf("PurgeExpired = %d, %v; want 2, nil", n, err)
			}
		}, a},
		{"release then same session", func(t *testing.T) { mustRelease(t, a, e) }, a},
		{"release all", func(t *testing.T) {
			if _, err := a.ReleaseAll(ctx); err != nil {
				t.Fatal(err)
			}
		}, b},
	}
	prev := mustAcquire(t, a, e)
	// Grants of other entities in between must not matter.
	mustAcquire(t, b, "entity::other")
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.end(t)
			got := mustAcquire(t, st.next, e)
			if got.Token <= prev.Token {
				t.Fatalf("token %d after %s, want > %d", got.Token, st.name, prev.Token)
			}
			refreshed := mustAcquire(t, st.next, e)
			extended, err := st.next.Extend(ctx, e, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if refreshed.Token != got.Token || extended.Token != got.Token {
				t.Fatalf("refresh/extend changed the token: %d, %d; want %d", refreshed.Token, extended.Token, got.Token)
			}
			prev = got
		})
	}
}

func mustRelease(t *testing.T, s *lock.Session, entity string) {
	t.Helper()
	if ok, err := s.Release(t.Context(), entity); err != nil || !ok {
		t.Fatalf("Release(%q) = %v, %v; want true, nil", entity, ok, err)
	}
}

func mustForce(t *testing.T, m *lock.Manager, entity string) {
	t.Helper()
	if ok, err := m.ForceRelease(t.Context(), entity); err != nil || !ok {
		t.Fatalf("ForceRelease(%q) = %v, %v; want true, nil", entity, ok, err)
	}
}
