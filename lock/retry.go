package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how Acquire waits while another session holds the entity.
//
// After the n-th failed attempt (n from 0) Acquire waits
// BaseDelay·2ⁿ, capped at MaxDelay, then spread uniformly by ±Jitter (a
// fraction: 0.2 means ±20%), and never less than MinInterval: a zero or tiny
// BaseDelay is raised to it, so no policy polls in a busy loop. It never
// waits past the holder's expiry when that comes sooner, and stops at once
// when its ctx ends.
//
// Waiters of one Manager line up per entity, first come first served; only
// the first in line polls the database. A release through the same Manager
// wakes the first waiter at once. Each backoff step that runs out counts as
// one retry, for every waiter in the line, whatever its place; a wake-up does
// not count, so a waiter does not use up its retries by losing, after a
// wake-up, to another process.
type RetryPolicy struct {
	// MaxRetries is how many attempts follow the first. Zero means one
	// attempt only; a negative value retries until ctx ends.
	MaxRetries int
	// BaseDelay is the wait after the first failed attempt.
	BaseDelay time.Duration
	// MaxDelay caps each wait. Zero means no cap.
	MaxDelay time.Duration
	// Jitter spreads each wait by up to this fraction either way, in [0, 1].
	Jitter float64
}

func (p RetryPolicy) validate() error {
	switch {
	case p.BaseDelay < 0:
		return fmt.Errorf("%w: retry BaseDelay %v is negative", ErrInvalidDuration, p.BaseDelay)
	case p.MaxDelay < 0:
		return fmt.Errorf("%w: retry MaxDelay %v is negative", ErrInvalidDuration, p.MaxDelay)
	case !(p.Jitter >= 0 && p.Jitter <= 1): // also rejects NaN
		return fmt.Errorf("%w: retry Jitter %v is outside [0, 1]", ErrInvalidOption, p.Jitter)
	}
	return nil
}

// delay is the wait after failed attempt n (from 0).
func (p RetryPolicy) delay(n int) time.Duration {
	const noDoubling = time.Duration(1 << 62) // doubling past this overflows
	d := p.BaseDelay
	for i := 0; i < n && d > 0 && d < noDoubling && (p.MaxDelay == 0 || d < p.MaxDelay); i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	if p.Jitter > 0 && d > 0 {
		spread := (rand.Float64()*2 - 1) * p.Jitter // in [-Jitter, +Jitter)
		d += time.Duration(float64(d) * spread)
	}
	return max(d, MinInterval)
}

// exhausted reports whether no retry may follow failed attempt n (from 0).
func (p RetryPolicy) exhausted(n int) bool {
	return p.MaxRetries >= 0 && n >= p.MaxRetries
}

// retry runs attempt under the Manager's RetryPolicy until it succeeds,
// fails with anything but a *HeldError, the policy gives up, ctx ends or the
// Manager closes. attempt reports contention as a *HeldError naming the
// entity that blocked it.
//
// How waiting works, and what counts as a retry:
//   - A caller tries once at once. Refused, it joins the line of this
//     Manager's waiters for the blocking entity, first come first served;
//     a release of that entity told to the Manager after its attempt
//     began, before the line was there to wake, wakes it as it joins.
//   - Only the head of a line polls the database, on the policy's backoff,
//     never later than the holder's expiry. Each backoff step that runs out
//     counts as one retry, for every waiter in the line, so a waiter gives
//     up after the same time whatever its place; on its last retry a waiter
//     tries the database whatever its place.
//   - Release, ReleaseAll and ForceRelease in this Manager wake the head of
//     the entity's line, which tries at once; when the head leaves the line,
//     the next waiter is woken the same way. Releases by other processes
//     wake it too, through the engine's change feed (changes.go): on
//     PostgreSQL LISTEN/NOTIFY, on SQLite the wake file, whose bells wake
//     the lines whose entity was released. A woken attempt that fails (the
//     entity went to another process first) does not count as a retry.
func (s *Session) retry(ctx context.Context, attempt func() error) error {
	m := s.m
	policy := m.cfg.retry
	var held *HeldError
	mk := m.queues.mark()
	err := attempt()
	if !errors.As(err, &held) || policy.exhausted(0) {
		return err
	}
	w := m.queues.join(held.Holder.Entity, &mk)
	defer func() { m.queues.leave(w) }()
	m.listen()
	began := time.Now()
	defer func() {
		d := time.Since(began)
		m.count(s, func(c *counters) { c.wait(d) })
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for retries := 0; ; {
		d := policy.delay(retries)
		if held != nil && m.queues.isHead(w) {
			if untilExpiry := held.Holder.ExpiresAt.Sub(m.leaseNow()); untilExpiry < d {
				d = max(untilExpiry, 0)
			}
		}
		timer.Reset(d)
		var last bool
		select {
		case <-ctx.Done():
			return waitError(ctx.Err(), held)
		case <-m.done:
			return waitError(ErrClosed, held)
		case <-w.wake:
			timer.Stop()
		case <-timer.C:
			retries++
			last = policy.exhausted(retries)
			if !last && !m.queues.isHead(w) {
				continue // the head polls for the whole line
			}
		}
		mk := m.queues.mark()
		err := attempt()
		var h *HeldError
		if !errors.As(err, &h) {
			return err
		}
		held = h
		if last {
			return err
		}
		if h.Holder.Entity != w.entity { // AcquireAll: another entity blocks now
			m.queues.leave(w)
			w = m.queues.join(h.Holder.Entity, &mk)
		}
	}
}

// waitError is the error of a wait cut short; it names the last holder seen.
func waitError(cause error, held *HeldError) error {
	if held == nil {
		return cause
	}
	return &waitCut{cause: cause, held: held}
}

// waitCut reports a wait that ctx or Close ended. It satisfies errors.Is for
// its cause (ctx.Err() or ErrClosed), not ErrHeld: the caller stopped
// waiting, which is what it should act on.
type waitCut struct {
	cause error
	held  *HeldError
}

func (e *waitCut) Error() string { return e.cause.Error() + " while waiting: " + e.held.Error() }
func (e *waitCut) Unwrap() error { return e.cause }
