package locktest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

// doOpts gives Do a one-minute TTL on a test clock with renewals every few
// real milliseconds, so renewals happen while the clock stands still.
func doOpts(clk *Clock) []lock.Option {
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
func waitRenewedAfterAdvance(t *testing.T, m *lock.Manager, clk *Clock, entity string) {
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

func testGuardRejectsStaleHolder(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	app := h.raw(t, dsn)
	if _, err := app.Exec(`CREATE TABLE docs (entity TEXT PRIMARY KEY, body TEXT, token INTEGER)`); err != nil {
		t.Fatal(err)
	}
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")

	// write updates the document under l, checked by Guard in the same tx.
	write := func(l lock.Lease, body string) error {
		tx, err := app.BeginTx(t.Context(), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := m.Guard(t.Context(), tx, l); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO docs VALUES ($1, $2, $3) ON CONFLICT (entity) DO UPDATE SET body = excluded.body, token = excluded.token`,
			l.Entity, body, l.Token); err != nil {
			return err
		}
		return tx.Commit()
	}
	read := func() (body string) {
		if err := app.QueryRow(`SELECT body FROM docs WHERE entity = 'doc::1'`).Scan(&body); err != nil {
			t.Fatal(err)
		}
		return body
	}

	la := mustAcquire(t, a, "doc::1")
	if err := write(la, "from a"); err != nil {
		t.Fatalf("a's guarded write while holding: %v", err)
	}
	clk.Advance(time.Minute) // a's lease lapses; b takes over
	lb := mustAcquire(t, b, "doc::1")
	if err := write(lb, "from b"); err != nil {
		t.Fatalf("b's guarded write: %v", err)
	}
	if err := write(la, "late write from a"); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("stale holder's write: got err %v, want ErrNotHeld", err)
	}
	if got := read(); got != "from b" {
		t.Errorf("document = %q, want %q", got, "from b")
	}
	// A lease with the right session but an old token is stale too.
	stale := lb
	stale.Token--
	if err := write(stale, "old token"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("old token: got err %v, want ErrNotHeld", err)
	}
	if err := m.Guard(t.Context(), nil, lb); !errors.Is(err, lock.ErrInvalidOption) {
		t.Errorf("nil tx: got err %v, want ErrInvalidOption", err)
	}
}

func testAcquireAll(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	ctx := t.Context()

	mine := mustAcquire(t, a, "e::2") // refreshed, not re-granted
	clk.Advance(time.Second)
	got, err := a.AcquireAll(ctx, "e::3", "e::1", "e::2", "e::1")
	if err != nil {
		t.Fatalf("AcquireAll: %v", err)
	}
	exp := clk.Now().Add(time.Minute)
	// New grants get new tokens (how large depends on the engine); the
	// refreshed lease keeps its own.
	want := []lock.Lease{
		{Entity: "e::1", SessionID: "a", AcquiredAt: clk.Now(), ExpiresAt: exp},
		{Entity: "e::2", SessionID: "a", Token: mine.Token, AcquiredAt: mine.AcquiredAt, ExpiresAt: exp},
		{Entity: "e::3", SessionID: "a", AcquiredAt: clk.Now(), ExpiresAt: exp},
	}
	if len(got) == len(want) {
		for _, i := range []int{0, 2} {
			if got[i].Token <= 0 {
				t.Errorf("%s: token %d, want > 0", got[i].Entity, got[i].Token)
			}
			want[i].Token = got[i].Token
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AcquireAll (-want +got):\n%s", diff)
	}

	// b wants e::0 (free), e::2 (a's) and e::9 (free): nothing may stick.
	_, err = b.AcquireAll(ctx, "e::9", "e::0", "e::2")
	var he *lock.HeldError
	if !errors.As(err, &he) || he.Holder.Entity != "e::2" || he.Holder.SessionID != "a" {
		t.Fatalf("got err %v; want a *HeldError for e::2 held by a", err)
	}
	bs, err := b.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lock.Lease{}, bs); diff != "" {
		t.Errorf("b's leases after a refused AcquireAll (-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{nil, {"ok", ""}} {
		if _, err := b.AcquireAll(ctx, bad...); !errors.Is(err, lock.ErrInvalidEntity) {
			t.Errorf("AcquireAll(%q): got err %v, want ErrInvalidEntity", bad, err)
		}
	}
}

func testAcquireAllWaitsForBlockingEntity(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "e::2")
	done := make(chan error, 1)
	go func() {
		_, err := b.AcquireAll(context.Background(), "e::1", "e::2")
		done <- err
	}()
	waitFor(t, "b to be refused", func() bool { return m.Stats().Contended >= 1 })
	mustRelease(t, a, "e::2") // wakes b despite the one-hour backoff
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AcquireAll: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireAll not woken by the release")
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

// A write transaction that passed Guard commits before anyone can take the
// entity over, even when the lease expires while the transaction runs: the
// takeover waits for the transaction (SQLite's write lock; PostgreSQL's FOR
// SHARE row lock).
func testGuardHoldsOffTakeover(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	other := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	app := h.raw(t, dsn)
	if _, err := app.Exec(`CREATE TABLE docs (entity TEXT PRIMARY KEY, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	a, b := mustSession(t, m, "a"), mustSession(t, other, "b")
	la := mustAcquire(t, a, "doc::1")

	tx, err := app.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := m.Guard(t.Context(), tx, la); err != nil {
		t.Fatalf("Guard while holding: %v", err)
	}
	clk.Advance(time.Minute) // a's lease lapses while its transaction runs

	var committed atomic.Bool
	type result struct {
		l         lock.Lease
		err       error
		afterTxOK bool
	}
	done := make(chan result, 1)
	go func() {
		l, err := b.TryAcquire(context.Background(), "doc::1")
		done <- result{l, err, committed.Load()}
	}()
	select {
	case r := <-done:
		t.Fatalf("takeover returned (%+v, %v) while the guarded transaction was open", r.l, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := tx.Exec(`INSERT INTO docs VALUES ($1, $2)`, "doc::1", "from a"); err != nil {
		t.Fatalf("guarded write: %v", err)
	}
	committed.Store(true)
	if err := tx.Commit(); err != nil {
		t.Fatalf("guarded commit: %v", err)
	}
	r := <-done
	if r.err != nil || !r.afterTxOK || r.l.SessionID != "b" || r.l.Token <= la.Token {
		t.Fatalf("takeover = %+v, %v (after commit: %v); want b's grant with a token above %d, after the commit",
			r.l, r.err, r.afterTxOK, la.Token)
	}
}
