package lock

import (
	"context"
	"fmt"
)

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
	found, err := s.m.eng.releaseGrant(ctx, l)
	if err != nil {
		return false, s.m.fail(ctx, "release", l.Entity, err)
	}
	if found {
		s.m.released(s, l.Entity)
	}
	return found, nil
}
