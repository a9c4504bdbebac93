package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/entitylock/entitylock/db/sqlitedb"
)

// AcquireAll takes every one of entities for this session, or none: in one
// transaction each entity is granted or refreshed as by TryAcquire, and if
// any is held by another session the transaction is rolled back and nothing
// is left behind. Duplicates are folded; the leases come back sorted by
// entity. The Manager's retry policy applies to the whole set, and the
// *HeldError of a refused attempt names, in Holder.Entity, the entity that
// blocked it. An agent that needs two entities at once (to merge them, say)
// gets both without the deadlock of taking them one by one.
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

// tryAcquireAll is one all-or-nothing attempt on sorted, distinct names.
func (s *Session) tryAcquireAll(ctx context.Context, names []string) (_ []Lease, err error) {
	tx, err := s.m.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	q := s.m.q.WithTx(tx)
	now := s.m.nowMs()
	leases := make([]Lease, len(names))
	for i, e := range names {
		row, err := q.Acquire(ctx, sqlitedb.AcquireParams{
			Entity:    e,
			SessionID: s.id,
			Now:       now,
			ExpiresAt: now + s.m.cfg.ttl.Milliseconds(),
		})
		if errors.Is(err, sql.ErrNoRows) {
			// The transaction holds the write lock: the holder cannot change.
			holder, err := q.Lease(ctx, sqlitedb.LeaseParams{Entity: e, Now: now})
			if err != nil {
				return nil, err
			}
			return nil, s.refused(leaseFromRow(holder))
		}
		if err != nil {
			return nil, err
		}
		leases[i] = leaseFromRow(row)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for _, l := range leases {
		s.granted(l, now)
	}
	return leases, nil
}
