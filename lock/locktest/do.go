package locktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// doOpts gives Do a one-minute TTL on a test clock with renewals every few
// real milliseconds, so renewals happen while the clock stands still.
func doOpts(clk *testkit.Clock) []lock.Option {
	return []lock.Option{
		lock.WithClock(clk.Now), lock.WithTTL(time.Minute),
		lock.WithRenewInterval(5 * time.Millisecond), lock.WithRetry(fastRetry),
	}
}

func testDoRunsUnderLeaseAndReleases(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, doOpts(clk)...)
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	errWork := errors.New("work failed")

	var inside lock.Lease
	err := a.Do(t.Context(), "entity::Foo", func(ctx context.Context, l lock.Lease) error {
		inside = l
		if _, err := b.TryAcquire(ctx, "entity::Foo"); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("inside Do: b got err %v, want ErrHeld", err)
		}
		return errWork
	})
	if !errors.Is(err, errWork) || errors.Is(err, lock.ErrLeaseLost) {
		t.Fatalf("Do = %v; want fn's error, not ErrLeaseLost", err)
	}
	if inside.Entity != "entity::Foo" || inside.SessionID != "a" {
		t.Errorf("fn got lease %+v", inside)
	}
	if _, err := m.Holder(t.Context(), "entity::Foo"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("after Do: Holder err = %v, want ErrNotHeld", err)
	}
}

func testDoReleasesWhenFnPanics(t *testing.T, h *harness) {
	m := h.open(t, doOpts(newTestClock())...)
	a := mustSession(t, m, "a")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic to go on", r)
			}
		}()
		a.Do(t.Context(), "entity::Foo", func(context.Context, lock.Lease) error { panic("boom") })
	}()
	if _, err := m.Holder(t.Context(), "entity::Foo"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("after panic: Holder err = %v, want ErrNotHeld", err)
	}
}

func testDoReleasesWhenCallerCtxIsCancelled(t *testing.T, h *harness) {
	m := h.open(t, doOpts(newTestClock())...)
	a := mustSession(t, m, "a")
	ctx, cancel := context.WithCancel(t.Context())
	err := a.Do(ctx, "entity::Foo", func(ctx context.Context, _ lock.Lease) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	if _, err := m.Holder(t.Context(), "entity::Foo"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("Holder err = %v, want ErrNotHeld", err)
	}
}

// The lease outlives its TTL while fn runs, because Do renews it.
func testDoRenews(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, doOpts(clk)...)
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	err := a.Do(t.Context(), "entity::Foo", func(ctx context.Context, l lock.Lease) error {
		for range 5 { // five times 40s: well past the one-minute TTL
			clk.Advance(40 * time.Second)
			waitRenewedAfterAdvance(t, m, clk, "entity::Foo")
		}
		h, err := m.Holder(ctx, "entity::Foo")
		if err != nil {
			return err
		}
		if h.Token != l.Token || !h.ExpiresAt.After(clk.Now()) {
			t.Errorf("holder %+v; want token %d live at %v", h, l.Token, clk.Now())
		}
		if _, err := b.TryAcquire(ctx, "entity::Foo"); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("b got err %v, want ErrHeld", err)
		}
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
}

// waitRenewedAfterAdvance waits, under doOpts, until Do has renewed entity
// in a renewal that began after the clock's last move, and that renewal is
// in effect (counted, its local deadline set). A renewal in flight while
// the clock moved does not count: its deadline is measured from before.
func waitRenewedAfterAdvance(t *testing.T, m *lock.Manager, clk *testkit.Clock, entity string) {
	t.Helper()
	want := clk.Now().Add(time.Minute) // the renewal's start + the doOpts TTL
	waitFor(t, "a renewal after the clock moved", func() bool {
		l, err := m.Holder(t.Context(), entity)
		return err == nil && !l.ExpiresAt.Before(want)
	})
	// That renewal is counted only after its deadline is set, and a renewal
	// counted from now on began after it committed.
	before := m.Stats().Renewals
	waitFor(t, "a renewal to be counted", func() bool { return m.Stats().Renewals > before })
}

// Cancelling Do's ctx asks fn to stop; it does not stop the renewals while
// fn still runs, so nobody else is granted the entity meanwhile.
func testDoKeepsRenewingAfterCallerCancels(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, doOpts(clk)...)
	other := h.openDSN(t, dsn, doOpts(clk)...)
	a, b := mustSession(t, m, "a"), mustSession(t, other, "b")
	ctx, cancel := context.WithCancel(t.Context())
	var stolen []time.Duration
	start := clk.Now()
	err := a.Do(ctx, "entity::Foo", func(fnCtx context.Context, l lock.Lease) error {
		cancel()
		<-fnCtx.Done()
		// fn ignores the cancellation and works on for five times 40s.
		for range 5 {
			clk.Advance(40 * time.Second)
			waitRenewedAfterAdvance(t, m, clk, "entity::Foo")
			if _, err := b.TryAcquire(t.Context(), "entity::Foo"); err == nil {
				stolen = append(stolen, clk.Now().Sub(start))
				b.Release(t.Context(), "entity::Foo")
			}
		}
		return nil
	})
	if len(stolen) > 0 {
		t.Errorf("another session was granted the entity at %v while fn ran (Do returned %v)", stolen, err)
	}
	if err != nil {
		t.Errorf("Do = %v; want nil: fn's work stayed under the lease", err)
	}
}

// A takeover in another process that no renewal noticed before fn returned
// is found by the release at the latest: Do reports the loss, never
// success.
func testDoReportsLossFoundAtRelease(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	// Renewals far apart in real time: none happens while fn runs.
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithRenewInterval(20*time.Second))
	other := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	a, b := mustSession(t, m, "a"), mustSession(t, other, "b")
	var taken lock.Lease
	err := a.Do(t.Context(), "entity::Foo", func(context.Context, lock.Lease) error {
		// An operator in another process evicts a, and b takes the entity.
		mustForce(t, other, "entity::Foo")
		taken = mustAcquire(t, b, "entity::Foo")
		return nil
	})
	var lost *lock.LeaseLostError
	if !errors.As(err, &lost) || !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("Do = %v; want a *LeaseLostError caused by ErrNotHeld", err)
	}
	if got, err := other.Holder(t.Context(), "entity::Foo"); err != nil || got != taken {
		t.Errorf("Holder = %+v, %v; want b's lease %+v untouched", got, err, taken)
	}
}

func testDoCancelsWhenLeaseIsForceReleased(t *testing.T, h *harness) {
	tests := []struct {
		name  string
		renew time.Duration
		// other opens the Manager that force-releases: the same one (the
		// loss is signalled at once) or a second one on the same file, as
		// another process would (the next renewal finds the loss).
		other bool
	}{
		// A renewal interval longer than the test's 10s wait: only the
		// in-process signal can cancel in time.
		{"same manager", 20 * time.Second, false},
		{"other manager", 5 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newTestClock()
			dsn := h.dsn(t)
			m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithRenewInterval(tt.renew))
			operator := m
			if tt.other {
				operator = h.openDSN(t, dsn, lock.WithClock(clk.Now))
			}
			a := mustSession(t, m, "a")
			var lease lock.Lease
			err := a.Do(t.Context(), "entity::Foo", func(ctx context.Context, l lock.Lease) error {
				lease = l
				mustForce(t, operator, "entity::Foo")
				select {
				case <-ctx.Done():
					return errors.New("stopped")
				case <-time.After(10 * time.Second):
					return errors.New("ctx not cancelled after ForceRelease")
				}
			})
			var lost *lock.LeaseLostError
			if !errors.As(err, &lost) || !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrNotHeld) {
				t.Fatalf("Do = %v; want a *LeaseLostError caused by ErrNotHeld", err)
			}
			if diff := cmp.Diff(lease, lost.Lease); diff != "" {
				t.Errorf("lost lease (-want +got):\n%s", diff)
			}
			if got := m.Stats().LostLeases; got != 1 {
				t.Errorf("Stats().LostLeases = %d, want 1", got)
			}
		})
	}
}

// When the database stops answering (another connection holds its write
// lock), renewals fail; fn's ctx is cancelled at the local deadline, which
// comes before the lease expires on the holder's clock.
func testDoCancelsBeforeExpiryWhenRenewalsStall(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, doOpts(clk)...)
	a := mustSession(t, m, "a")
	raw := h.raw(t, dsn)

	err := a.Do(t.Context(), "entity::Foo", func(ctx context.Context, l lock.Lease) error {
		unblock := h.blockLeaseWrites(t, raw)
		defer unblock()

		// The clock stood still since the grant, so the last renewal began
		// at clk.Now(): the deadline is TTL − margin (6s) away.
		clk.Advance(time.Minute - 6*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			return errors.New("ctx not cancelled at the local deadline")
		}
		if !clk.Now().Before(l.ExpiresAt) {
			t.Errorf("cancelled at %v, not before the expiry %v", clk.Now(), l.ExpiresAt)
		}
		return context.Cause(ctx)
	})
	if !errors.Is(err, lock.ErrLeaseLost) || errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("Do = %v; want ErrLeaseLost from the local deadline", err)
	}
}

func testDoCancelsWhenManagerCloses(t *testing.T, h *harness) {
	m, err := lock.Open(t.Context(), h.dsn(t), lock.WithRenewInterval(20*time.Second), lock.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a := mustSession(t, m, "a")
	err = a.Do(t.Context(), "entity::Foo", func(ctx context.Context, l lock.Lease) error {
		if err := m.Close(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("ctx not cancelled by Close")
		}
	})
	if !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrClosed) {
		t.Fatalf("Do = %v; want ErrLeaseLost caused by ErrClosed", err)
	}
}

// On an engine with ReleaseNotifications, a Do whose lease another Manager
// force-releases learns of it from the release's notification, long before
// its next renewal (20s away). Without, a Manager with no waiters may learn
// of it only at its next renewal (DoCancelsWhenLeaseIsForceReleased).
func testDoLosesAtOnceToOtherManagersRelease(t *testing.T, h *harness) {
	if !h.b.ReleaseNotifications {
		t.Skipf("%s: without ReleaseNotifications, a Manager without waiters finds the loss at its next renewal", h.b.Name)
	}
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithTTL(time.Minute), lock.WithRenewInterval(20*time.Second))
	operator := h.openDSN(t, dsn)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- mustSession(t, m, "worker").Do(context.Background(), "entity::job", func(ctx context.Context, l lock.Lease) error {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		})
	}()
	<-started
	// Released before or after the change feed starts: the notification,
	// or the check the feed makes when it starts, makes Do renew and find
	// the loss.
	began := time.Now()
	if ok, err := operator.ForceRelease(t.Context(), "entity::job"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("Do = %v; want ErrLeaseLost (ErrNotHeld)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Do not cancelled %v after another Manager's release; its next renewal is 20s away", time.Since(began))
	}
}
