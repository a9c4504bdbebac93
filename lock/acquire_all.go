package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AcquireAll takes every one of entities for this session, or none: in one
// atomic statement each entity is granted or refreshed as by TryAcquire, and
// if any is held by another session none is, and nothing is left behind.
// Duplicates are folded; the leases come back sorted by entity. The
// Manager's retry policy applies to the whole set, and the *HeldError of a
// refused attempt names, in Holder.Entity, the entity that blocked it. An
// agent that needs two entities at once (to merge them, say) gets both
// without the deadlock of taking them one by one.
func (s *Session) AcquireAll(ctx context.Context, entities ...string) ([]Lease, error) {
	if len(entities) == 0 {
		return nil, opError("acquire all", "", fmt.Errorf("%w: no entities", ErrInvalidEntity))
	}
	for _, e := range entities {
		if err := validateEntity(e); err != nil {
			return nil, opError("acquire all", e, err)
		}
	}
	names := slices.Compact(slices.Sorted(slices.Values(entities)))
	var leases []Lease
	err := s.retry(ctx, func() error {
		if err := s.m.enter(); err != nil {
			return err
		}
		defer s.m.exit()
		var err error
		leases, err = s.tryAcquireAll(ctx, names)
		return err
	})
	if err != nil {
		var held *HeldError
		if errors.As(err, &held) {
			return nil, s.m.fail(ctx, "acquire all", held.Holder.Entity, err)
		}
		return nil, s.m.fail(ctx, "acquire all", "", err)
	}
	return leases, nil
}

// tryAcquireAll is one all-or-nothing attempt on sorted, distinct names: a
// single statement grants or refreshes all of them, or none when any is
// held by another session; the holder is then read in a second statement.
// The database may also roll the statement back for a concurrent one
// (errConflict); the holder is read then too. The statement runs again when
// no holder is found, up to maxAttempts times.
func (s *Session) tryAcquireAll(ctx context.Context, names []string) ([]Lease, error) {
	m := s.m
	for range maxAttempts {
		before := m.localNow()
		leases, nowMs, err := m.eng.acquireAll(ctx, names, s.id, m.stmtNow(), m.cfg.ttl.Milliseconds())
		switch {
		case err == nil && len(leases) == len(names):
			m.observe(before, nowMs)
			slices.SortFunc(leases, func(a, b Lease) int { return strings.Compare(a.Entity, b.Entity) })
			for _, l := range leases {
				s.granted(l, nowMs)
			}
			return leases, nil
		case err == nil:
			return nil, fmt.Errorf("granted %d of %d entities: the all-or-nothing statement broke its contract", len(leases), len(names))
		case !errors.Is(err, errHeldByOther) && !errors.Is(err, errConflict):
			return nil, err
		}
		// Held, or rolled back for a concurrent grant: the holder, if any,
		// is the one to wait for.
		holder, nowMs, err := m.eng.firstHeld(ctx, names, s.id, m.stmtNow())
		switch {
		case errors.Is(err, errNoLease): // released in between
			continue
		case err != nil:
			return nil, err
		}
		m.observe(before, nowMs)
		return nil, s.refused(holder)
	}
	return nil, fmt.Errorf("%w: their holders kept changing", ErrHeld)
}
