package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A Session acquires and releases leases under one session id. It is safe
// for concurrent use. Its leases live in the database under its id alone,
// so a session that crashed is resumed by asking a Manager for the same id.
type Session struct {
	m     *Manager
	id    string
	stats counters
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// TryAcquire takes entity without waiting for another session to release
// it. An atomic statement finds entity
//   - free, or its lease expired: a new grant with a new fencing token,
//     AcquiredAt now and ExpiresAt now + TTL;
//   - live and held by this session: a refresh, ExpiresAt now + TTL or,
//     when later, the expiry the lease had (a refresh never shortens a
//     lease another handle of the session may count on), with token and
//     AcquiredAt unchanged;
//   - live and held by another session: an error that is a *HeldError
//     (errors.Is(err, ErrHeld)) naming the holder, read just after.
//
// When the holder is gone by the time it is read, or is this very session
// (another handle with the same id was granted entity in between), the
// statement runs again; after 8 attempts TryAcquire gives up with an error
// that wraps ErrHeld, saying that the holder kept changing.
func (s *Session) TryAcquire(ctx context.Context, entity string) (Lease, error) {
	if err := validateEntity(entity); err != nil {
		return Lease{}, opError("acquire", entity, err)
	}
	if err := s.m.enter(); err != nil {
		return Lease{}, opError("acquire", entity, err)
	}
	defer s.m.exit()
	l, _, err := s.tryAcquire(ctx, entity)
	if err != nil {
		return Lease{}, s.m.fail(ctx, "acquire", entity, err)
	}
	return l, nil
}

// Acquire takes entity like TryAcquire and, while another session holds it,
// waits and retries under the Manager's RetryPolicy. It never waits past the
// holder's expiry; a release, through this Manager or by another process,
// wakes it at once, and waiters of one Manager are served in arrival order.
// It returns as soon as ctx ends or the Manager closes, with an error
// satisfying errors.Is(err, ctx.Err()) or ErrClosed. When the retries run
// out, the error is the last *HeldError. Only contention is retried: a
// database error (SQLITE_BUSY past the busy timeout, a PostgreSQL error,
// I/O) ends Acquire at once, wrapped. Should the grant have committed
// before the error (an answer lost on the way back), the same session's
// next attempt refreshes that grant, with the same token.
func (s *Session) Acquire(ctx context.Context, entity string) (Lease, error) {
	l, _, err := s.acquire(ctx, entity)
	return l, err
}

// acquire is Acquire; it also returns when, on the deadline clock, the
// granting attempt began: the lease runs for the TTL from then at least.
func (s *Session) acquire(ctx context.Context, entity string) (Lease, time.Time, error) {
	if err := validateEntity(entity); err != nil {
		return Lease{}, time.Time{}, opError("acquire", entity, err)
	}
	var (
		l     Lease
		start time.Time
	)
	err := s.retry(ctx, func() error {
		if err := s.m.enter(); err != nil {
			return err
		}
		defer s.m.exit()
		var err error
		l, start, err = s.tryAcquire(ctx, entity)
		return err
	})
	if err != nil {
		return Lease{}, time.Time{}, s.m.fail(ctx, "acquire", entity, err)
	}
	return l, start, nil
}

// tryAcquire is one attempt; the caller has validated entity and entered.
// start is the deadline clock's reading when the granting statement began.
func (s *Session) tryAcquire(ctx context.Context, entity string) (l Lease, start time.Time, err error) {
	// When a live lease of another session stands, the holder is read in a
	// second statement. Should the holder vanish in between, or be this very
	// session (another goroutine or process sharing its id was granted the
	// entity in between), the grant is simply tried again: it is then a
	// grant or a refresh.
	m := s.m
	for range maxAttempts {
		start = m.deadlineNow()
		before := m.localNow()
		l, nowMs, err := m.eng.acquire(ctx, entity, s.id, m.stmtNow(), m.cfg.ttl.Milliseconds())
		switch {
		case err == nil:
			m.observe(before, nowMs)
			s.granted(l, nowMs)
			return l, start, nil
		case !errors.Is(err, errHeldByOther):
			return Lease{}, time.Time{}, err
		}
		holder, nowMs, err := m.eng.holder(ctx, entity, m.stmtNow())
		switch {
		case errors.Is(err, errNoLease): // released in between
			continue
		case err != nil:
			return Lease{}, time.Time{}, err
		case holder.SessionID == s.id:
			continue
		}
		m.observe(before, nowMs)
		return Lease{}, time.Time{}, s.refused(holder)
	}
	return Lease{}, time.Time{}, fmt.Errorf("%w: its holder kept changing", ErrHeld)
}

// Extend pushes back the expiry of this session's live lease on entity by
// `by`, keeping its token. It fails with ErrNotHeld when the session holds
// no live lease on entity, including one that expired and was not yet
// reclaimed: an expired lease is never revived, since another session may
// have been granted the entity and released it in between.
func (s *Session) Extend(ctx context.Context, entity string, by time.Duration) (Lease, error) {
	if err := validateEntity(entity); err != nil {
		return Lease{}, opError("extend", entity, err)
	}
	if err := validateDuration("extension", by); err != nil {
		return Lease{}, opError("extend", entity, err)
	}
	if err := s.m.enter(); err != nil {
		return Lease{}, opError("extend", entity, err)
	}
	defer s.m.exit()
	l, err := s.m.eng.extend(ctx, entity, s.id, s.m.stmtNow(), by.Milliseconds())
	if err != nil {
		return Lease{}, s.m.fail(ctx, "extend", entity, err)
	}
	s.m.count(s, func(c *counters) { c.extends.Add(1) })
	return l, nil
}

// Release removes this session's lease on entity, live or expired, and
// reports whether there was one. It never touches another session's lease.
func (s *Session) Release(ctx context.Context, entity string) (bool, error) {
	if err := validateEntity(entity); err != nil {
		return false, opError("release", entity, err)
	}
	if err := s.m.enter(); err != nil {
		return false, opError("release", entity, err)
	}
	defer s.m.exit()
	found, err := s.m.eng.release(ctx, entity, s.id)
	if err != nil {
		return false, s.m.fail(ctx, "release", entity, err)
	}
	if found {
		s.m.released(s, entity)
	}
	return found, nil
}

// ReleaseAll removes every lease of this session, live or expired, and
// returns how many it removed. Call it when an agent shuts down, so others
// need not wait for the TTL. Its cost grows with the session's own leases,
// not with the table.
func (s *Session) ReleaseAll(ctx context.Context) (int, error) {
	if err := s.m.enter(); err != nil {
		return 0, opError("release all", "", err)
	}
	defer s.m.exit()
	entities, err := s.m.eng.releaseSession(ctx, s.id)
	if err != nil {
		return 0, s.m.fail(ctx, "release all", "", err)
	}
	for _, e := range entities {
		s.m.released(s, e)
	}
	return len(entities), nil
}

// Locks returns this session's live leases, ordered by entity.
func (s *Session) Locks(ctx context.Context) ([]Lease, error) {
	if err := s.m.enter(); err != nil {
		return nil, opError("locks", "", err)
	}
	defer s.m.exit()
	leases, err := s.m.eng.sessionLeases(ctx, s.id, s.m.stmtNow())
	if err != nil {
		return nil, s.m.fail(ctx, "locks", "", err)
	}
	return leases, nil
}
