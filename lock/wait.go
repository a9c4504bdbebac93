package lock

import (
	"context"
	"errors"
	"time"
)

// retry runs attempt under the Manager's RetryPolicy until it succeeds,
// fails with anything but a *HeldError, the policy gives up, ctx ends or the
// Manager closes. attempt reports contention as a *HeldError naming the
// entity that blocked it.
//
// How waiting works, and what counts as a retry:
//   - A caller tries once at once. Refused, it joins the line of this
//     Manager's waiters for the blocking entity, first come first served.
//   - Only the head of a line polls the database, on the policy's backoff,
//     never later than the holder's expiry. Each backoff step that runs out
//     counts as one retry, for every waiter in the line, so a waiter gives
//     up after the same time whatever its place; on its last retry a waiter
//     tries the database whatever its place.
//   - Release, ReleaseAll and ForceRelease in this Manager wake the head of
//     the entity's line, which tries at once; when the head leaves the line,
//     the next waiter is woken the same way. Releases by other processes
//     wake it too, through the engine's change feed (changes.go): on
//     PostgreSQL LISTEN/NOTIFY, on SQLite a watch on the database file that
//     wakes the lines whose entity is free. A woken attempt that fails (the
//     entity went to another process first) does not count as a retry.
func (s *Session) retry(ctx context.Context, attempt func() error) error {
	m := s.m
	policy := m.cfg.retry
	var held *HeldError
	err := attempt()
	if !errors.As(err, &held) || policy.exhausted(0) {
		return err
	}
	w := m.queues.join(held.Holder.Entity)
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
			if untilExpiry := held.Holder.ExpiresAt.Sub(m.now()); untilExpiry < d {
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
			w = m.queues.join(h.Holder.Entity)
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
