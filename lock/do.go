package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLeaseLost means a lease ended while its holder was still working under
// it: a renewal found it taken (by expiry takeover or ForceRelease), or no
// renewal got through before the holder's local deadline. The error is a
// *LeaseLostError naming the lease.
var ErrLeaseLost = errors.New("lease lost")

// ErrNotReleased means Do's function returned nil, so its work stands, but
// the release of its lease then failed: the lease stays in the database
// until it expires, at most the TTL later, unless a retry of the release
// by the same session removes it first. The error wraps the release's cause.
var ErrNotReleased = errors.New("work done, lease not released")

// errNotRenewed is the cause of a loss noticed on the holder's own clock.
var errNotRenewed = errors.New("not renewed before the local deadline")

// LeaseLostError reports the lease Do lost and why. errors.Is(err,
// ErrLeaseLost) holds for it; Unwrap gives the cause: ErrNotHeld when a
// renewal found the lease gone, or a deadline error when renewals did not
// get through in time.
type LeaseLostError struct {
	Lease Lease
	Cause error
}

// Error names the entity and token of the lost lease.
func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("%s: %q token %d: %v", ErrLeaseLost, e.Lease.Entity, e.Lease.Token, e.Cause)
}

// Is makes errors.Is(err, ErrLeaseLost) true.
func (e *LeaseLostError) Is(target error) bool { return target == ErrLeaseLost }

// Unwrap returns the cause.
func (e *LeaseLostError) Unwrap() error { return e.Cause }

// Do acquires entity under the Manager's retry policy, runs fn while holding
// it, and releases it when fn returns or panics (the panic goes on after the
// release, which runs even when ctx was cancelled).
//
// While fn runs the lease is renewed in the background every renewal
// interval (WithRenewInterval, default TTL/3); transient failures of a
// renewal are retried. Renewals go on until fn returns, even after ctx is
// cancelled: cancelling asks fn to stop, and fn keeps its lease for as long
// as it takes to. fn's ctx is cancelled as soon as the lease is lost: at
// once when the lease is released through the same Manager (ForceRelease,
// or Release by the same session); when a renewal finds another holder or
// no lease (a release by another process); when the local deadline passes
// without a successful renewal: the start of the last successful renewal +
// TTL − safety margin (WithSafetyMargin, default TTL/10), measured on the
// monotonic clock (or the WithClock clock), so a step of the wall clock
// moves it neither way; or when the Manager closes. The deadline can only
// fire before the lease expires in the database, so fn is told to stop
// before anyone else can be granted entity. fn should still guard its
// writes (Manager.Guard): a cancelled ctx asks fn to stop, it cannot take
// back a write in flight.
//
// Do returns fn's error. Do never reports success for work whose lease was
// lost while fn ran: when the lease was lost, or the release after fn finds
// the grant already gone (taken over or force-released before a renewal
// could notice), the error satisfies errors.Is(err, ErrLeaseLost) and
// errors.As gives the *LeaseLostError, wrapped together with fn's own error
// if it had one.
// When fn returned nil and its lease was not lost but the release failed,
// the error satisfies errors.Is(err, ErrNotReleased), and fn's work stands;
// when fn failed, a failed release is not reported. Either way a lease not
// released expires.
func (s *Session) Do(ctx context.Context, entity string, fn func(ctx context.Context, l Lease) error) (err error) {
	if fn == nil {
		return opError("do", entity, fmt.Errorf("%w: nil function", ErrInvalidOption))
	}
	if cfg := &s.m.cfg; !cfg.canRenew() {
		return opError("do", entity, fmt.Errorf("%w: TTL %v is too short to renew every %v with a safety margin of %v",
			ErrInvalidDuration, cfg.ttl, cfg.renewEvery(), cfg.safetyMargin()))
	}
	l, start, err := s.acquire(ctx, entity)
	if err != nil {
		return err
	}
	k := s.keep(ctx, l, start)
	defer func() {
		k.stop()
		// Release even when the caller's ctx is done; a lost lease may still
		// be ours in the database (renewals failed, nobody took it yet).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.m.cfg.ttl)
		defer cancel()
		released, relErr := s.releaseGrant(rctx, l)
		if relErr == nil && !released {
			// The grant was gone before fn returned, and no renewal had
			// noticed yet: fn's work was not under the lease throughout.
			k.lose(ErrNotHeld)
		}
		lost := k.lostErr.Load()
		switch {
		case lost != nil && err != nil:
			err = fmt.Errorf("%w (%w)", err, lost)
		case lost != nil:
			err = opError("do", entity, lost)
		case err == nil && relErr != nil:
			err = opError("do", entity, fmt.Errorf("%w: %w", ErrNotReleased, relErr))
		}
	}()
	return fn(k.ctx, l)
}

// releaseGrant removes exactly grant l, nothing the session got since, and
// reports whether it was still there.
func (s *Session) releaseGrant(ctx context.Context, l Lease) (bool, error) {
	if err := s.m.enter(); err != nil {
		return false, opError("release", l.Entity, err)
	}
	defer s.m.exit()
	n, err := s.m.eng.releaseGrant(ctx, l)
	if err != nil {
		return false, s.m.fail(ctx, "release", l.Entity, err)
	}
	if n > 0 {
		s.m.released(s, l.Entity)
	}
	return n > 0, nil
}

// keeper renews one lease in the background and watches its local deadline.
type keeper struct {
	s      *Session
	lease  Lease
	ctx    context.Context // fn's
	cancel context.CancelCauseFunc

	deadline atomic.Pointer[time.Time] // on the deadline clock (config.deadlineNow)
	lostErr  atomic.Pointer[LeaseLostError]
	quit     chan struct{}
	check    chan struct{} // buffered 1: renew now, a release was notified
	wg       sync.WaitGroup
}

// keep starts renewing l, granted by a statement that began at start on
// the deadline clock.
func (s *Session) keep(ctx context.Context, l Lease, start time.Time) *keeper {
	k := &keeper{s: s, lease: l, quit: make(chan struct{}), check: make(chan struct{}, 1)}
	k.ctx, k.cancel = context.WithCancelCause(ctx)
	// The grant (or refresh) set ExpiresAt to its start + TTL, after start.
	k.setDeadline(start)
	s.m.keepers.add(k)
	s.m.listen() // releases by other processes reach k at once (SQLite: while the Manager has waiters)
	k.wg.Go(k.renew)
	k.wg.Go(k.watch)
	return k
}

// setDeadline sets the local deadline from a successful grant or renewal
// whose statement began at start on the deadline clock.
func (k *keeper) setDeadline(start time.Time) {
	cfg := &k.s.m.cfg
	// Less a millisecond: the database stores start truncated to ms, so
	// its expiry may come up to a millisecond before start + TTL.
	d := start.Add(cfg.ttl - cfg.safetyMargin() - time.Millisecond)
	k.deadline.Store(&d)
}

// left is the time until the local deadline.
func (k *keeper) left() time.Duration {
	return k.deadline.Load().Sub(k.s.m.cfg.deadlineNow())
}

// stop ends renewal and cancels fn's ctx.
func (k *keeper) stop() {
	k.s.m.keepers.remove(k)
	close(k.quit)
	k.wg.Wait()
	k.cancel(context.Canceled)
}

func (k *keeper) lose(cause error) {
	e := &LeaseLostError{Lease: k.lease, Cause: cause}
	if k.lostErr.CompareAndSwap(nil, e) {
		k.s.lost(k.lease, cause)
		k.cancel(e)
	}
}

// poke asks the renewal loop to renew now.
func (k *keeper) poke() {
	select {
	case k.check <- struct{}{}:
	default: // a check is already pending
	}
}

func (k *keeper) lostAlready() bool { return k.lostErr.Load() != nil }

// renew refreshes the lease every renewal interval until Do returns or the
// lease is lost. It goes on after fn's ctx is cancelled: fn may still be
// running, and its work is covered until it returns.
func (k *keeper) renew() {
	m := k.s.m
	every := m.cfg.renewEvery()
	retryIn := max(every/8, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Do returning: stop a renewal in flight
		select {
		case <-k.quit:
			cancel()
		case <-ctx.Done():
		}
	}()

	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-k.quit:
			return
		case <-t.C:
		case <-k.check:
			t.Stop()
		}
		if k.lostAlready() {
			return
		}
		// An attempt may take until the local deadline: cut short, it
		// would cost a PostgreSQL connection (pgx closes a connection whose
		// query is cancelled), and the next attempt a new one.
		start := m.cfg.deadlineNow()
		err := k.renewOnce(ctx, max(every, k.left()))
		switch {
		case err == nil:
			k.setDeadline(start)
			// Counted once in effect, deadline included.
			m.count(k.s, func(c *counters) { c.renewals.Add(1) })
			t.Reset(every)
		case errors.Is(err, sql.ErrNoRows):
			k.lose(ErrNotHeld)
			return
		case errors.Is(err, ErrDatabaseReplaced):
			k.lose(err)
			return
		case ctx.Err() != nil || errors.Is(err, ErrClosed):
			return
		default: // busy, interrupted by the per-attempt timeout, I/O: try again soon
			m.cfg.logger.Debug("entitylock: renewal failed; retrying",
				slog.String("entity", k.lease.Entity), slog.Any("err", err))
			t.Reset(retryIn)
		}
	}
}

func (k *keeper) renewOnce(ctx context.Context, timeout time.Duration) error {
	m := k.s.m
	if err := m.enter(); err != nil {
		return err
	}
	defer m.exit()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before := m.cfg.now()
	_, nowMs, err := m.eng.renew(ctx, k.lease, m.at(), m.cfg.ttl.Milliseconds())
	if err == nil {
		m.observe(before, nowMs)
	}
	return err
}

// watch cancels fn's ctx when the local deadline passes, or when the
// Manager closes. It re-reads the deadline clock at least every renewal
// interval, so an injected clock that jumps is noticed too.
func (k *keeper) watch() {
	m := k.s.m
	every := m.cfg.renewEvery()
	t := time.NewTimer(every)
	defer t.Stop()
	for !k.lostAlready() {
		left := k.left()
		if left <= 0 {
			k.lose(errNotRenewed)
			return
		}
		t.Reset(min(left, every))
		select {
		case <-k.quit:
			return
		case <-m.done: // Close: nobody will renew the lease any more
			k.lose(ErrClosed)
			return
		case <-t.C:
		}
	}
}
