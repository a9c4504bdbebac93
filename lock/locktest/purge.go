package locktest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

// A purge of a backlog larger than any batch deletes every released and
// expired row, and nothing live; RowCounts sees them before and after; a
// purged entity's next token is still above every token it had.
func testPurgeInBatchesAndRowCounts(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithSweepInterval(0))
	ctx := t.Context()
	names := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s::%05d", prefix, i)
		}
		return out
	}
	const released, expired, live = 5000, 300, 200
	r, x, l := mustSession(t, m, "releaser"), mustSession(t, m, "expirer"), mustSession(t, m, "holder")
	var top int64
	for _, chunk := range [][]string{names("r", released)[:released/2], names("r", released)[released/2:]} {
		leases, err := r.AcquireAll(ctx, chunk...)
		if err != nil {
			t.Fatal(err)
		}
		for _, ls := range leases {
			top = max(top, ls.Token)
		}
		if _, err := r.ReleaseAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.AcquireAll(ctx, names("x", expired)...); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := l.AcquireAll(ctx, names("l", live)...); err != nil {
		t.Fatal(err)
	}

	counts, err := m.RowCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := lock.RowCounts{Live: live, Expired: expired, Released: released}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Fatalf("RowCounts before the purge (-want +got):\n%s", diff)
	}
	if got := counts.Reclaimable(); got != expired+released {
		t.Errorf("Reclaimable = %d, want %d", got, expired+released)
	}

	n, err := m.PurgeExpired(ctx)
	if err != nil || n != expired+released {
		t.Fatalf("PurgeExpired = %d, %v; want %d, nil", n, err, expired+released)
	}
	counts, err = m.RowCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lock.RowCounts{Live: live}, counts); diff != "" {
		t.Errorf("RowCounts after the purge (-want +got):\n%s", diff)
	}
	if got, err := l.Locks(ctx); err != nil || len(got) != live {
		t.Errorf("live leases after the purge: %d, %v; want %d", len(got), err, live)
	}
	again := mustAcquire(t, x, "r::00000")
	if again.Token <= top {
		t.Errorf("token of a purged entity = %d, want > %d", again.Token, top)
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

func testPurgeExpiredAndForceRelease(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "session-a"), mustSession(t, m, "session-b")
	mustAcquire(t, a, "entity::1")
	mustAcquire(t, a, "entity::2")
	clk.Advance(time.Minute)
	live := mustAcquire(t, a, "entity::3")

	n, err := m.PurgeExpired(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("PurgeExpired = %d, %v; want 2, nil", n, err)
	}
	if n, err := m.PurgeExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("second PurgeExpired = %d, %v; want 0, nil", n, err)
	}

	ok, err := m.ForceRelease(t.Context(), "entity::3")
	if err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v; want true, nil", ok, err)
	}
	got := mustAcquire(t, b, "entity::3")
	if got.Token <= live.Token {
		t.Errorf("token after ForceRelease = %d, want > %d", got.Token, live.Token)
	}
	if _, err := a.Extend(t.Context(), "entity::3", time.Minute); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("evicted holder's Extend: got err %v, want ErrNotHeld", err)
	}
	if ok, err := m.ForceRelease(t.Context(), "entity::none"); err != nil || ok {
		t.Errorf("ForceRelease of free entity = %v, %v; want false, nil", ok, err)
	}
}
