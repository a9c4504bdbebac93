package main

import (
	"context"
	"database/sql"
	"fmt"
)

// seedSchema is the original module's table: TEXT times from
// datetime('now'), a primary key on the name and no index on the session.
const seedSchema = `CREATE TABLE IF NOT EXISTS entity_advisory_locks (
    entity_name TEXT NOT NULL PRIMARY KEY,
    session_id  TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
)`

// The original module's statements, exactly as written.
const (
	seedTryAcquire = `INSERT INTO entity_advisory_locks (entity_name, session_id, acquired_at, expires_at)
             VALUES (?, ?, datetime('now'), datetime('now', ? || ' seconds'))
             ON CONFLICT(entity_name) DO UPDATE SET
                 session_id  = excluded.session_id,
                 acquired_at = excluded.acquired_at,
                 expires_at  = excluded.expires_at
             WHERE
                 -- reclaim if expired
                 entity_advisory_locks.expires_at < datetime('now')
                 OR
                 -- refresh if same session
                 entity_advisory_locks.session_id = excluded.session_id
             RETURNING (session_id = ?) AS acquired`
	seedRelease    = `DELETE FROM entity_advisory_locks WHERE entity_name = ? AND session_id = ?`
	seedReleaseAll = `DELETE FROM entity_advisory_locks WHERE session_id = ?`
)

// seedStore runs the seed's SQL on a *sql.DB of either driver. With
// prepared set, the statements are prepared once (as sqlx's statement cache
// would); otherwise each call passes the SQL text, as written in the seed.
type seedStore struct {
	db                       *sql.DB
	acquire, release, relAll *sql.Stmt
}

func newSeedStore(ctx context.Context, db *sql.DB, prepared bool) (*seedStore, error) {
	if _, err := db.ExecContext(ctx, seedSchema); err != nil {
		return nil, err
	}
	s := &seedStore{db: db}
	if prepared {
		var err error
		if s.acquire, err = db.PrepareContext(ctx, seedTryAcquire); err != nil {
			return nil, err
		}
		if s.release, err = db.PrepareContext(ctx, seedRelease); err != nil {
			return nil, err
		}
		if s.relAll, err = db.PrepareContext(ctx, seedReleaseAll); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// tryAcquire is the seed's try_acquire_once.
func (s *seedStore) tryAcquire(ctx context.Context, entity, session string) (bool, error) {
	var row *sql.Row
	if s.acquire != nil {
		row = s.acquire.QueryRowContext(ctx, entity, session, "120", session)
	} else {
		row = s.db.QueryRowContext(ctx, seedTryAcquire, entity, session, "120", session)
	}
	var acquired bool
	err := row.Scan(&acquired)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return acquired, err
}

func (s *seedStore) releaseOne(ctx context.Context, entity, session string) error {
	var err error
	if s.release != nil {
		_, err = s.release.ExecContext(ctx, entity, session)
	} else {
		_, err = s.db.ExecContext(ctx, seedRelease, entity, session)
	}
	return err
}

func (s *seedStore) releaseAll(ctx context.Context, session string) (int64, error) {
	var res sql.Result
	var err error
	if s.relAll != nil {
		res, err = s.relAll.ExecContext(ctx, session)
	} else {
		res, err = s.db.ExecContext(ctx, seedReleaseAll, session)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// fill inserts n live leases of other sessions (1,000 sessions) with the
// seed's TEXT times, as the seed would have stored them.
func (s *seedStore) fill(ctx context.Context, n int) error {
	_, err := s.db.ExecContext(ctx, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
		INSERT INTO entity_advisory_locks
		SELECT 'bulk::' || i, 'bulk-' || (i % 1000), datetime('now'), datetime('now', '+1 hour') FROM c`, n)
	if err != nil {
		return fmt.Errorf("fill seed table: %w", err)
	}
	return nil
}
