// Package pgsql holds the hand-written PostgreSQL statements the harness
// compares the lock API with: the seed's, and the floor.
package pgsql

// The seed's statements as its project writes them for PostgreSQL: the
// same upsert, timed by NOW() + an interval, and DELETE to release.
const (
	SeedSchema = `CREATE TABLE IF NOT EXISTS entity_advisory_locks (
    entity_name TEXT NOT NULL PRIMARY KEY,
    session_id  TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
)`
	SeedGrant = `INSERT INTO entity_advisory_locks (entity_name, session_id, acquired_at, expires_at)
             VALUES ($1, $2, NOW(), NOW() + ($3 || ' seconds')::interval)
             ON CONFLICT (entity_name) DO UPDATE SET
                 session_id  = excluded.session_id,
                 acquired_at = excluded.acquired_at,
                 expires_at  = excluded.expires_at
             WHERE
                 entity_advisory_locks.expires_at < NOW()
                 OR
                 entity_advisory_locks.session_id = excluded.session_id
             RETURNING (session_id = $2) AS acquired`
	SeedRelease = `DELETE FROM entity_advisory_locks WHERE entity_name = $1 AND session_id = $2`
)

// The floor: the cheapest correct pair written by hand — one upsert that
// grants a free or expired row with a token from a sequence (or refreshes
// the caller's own), and a release that commits without waiting for the
// WAL flush. No triggers, no notifications, no lease bookkeeping.
const (
	FloorSchema = `CREATE TABLE floor_leases (
    entity     text   NOT NULL PRIMARY KEY,
    session_id text   NOT NULL,
    token      bigint NOT NULL,
    expires_at bigint NOT NULL
) WITH (fillfactor = 80);
CREATE SEQUENCE floor_tokens`
	FloorGrant = `INSERT INTO floor_leases AS l (entity, session_id, token, expires_at)
VALUES ($1, $2, nextval('floor_tokens'), (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3)
ON CONFLICT (entity) DO UPDATE SET
    token = CASE WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.expires_at - $3
        THEN l.token ELSE excluded.token END,
    session_id = excluded.session_id,
    expires_at = excluded.expires_at
WHERE l.expires_at <= excluded.expires_at - $3 OR l.session_id = excluded.session_id
RETURNING l.token`
	FloorRelease = `UPDATE floor_leases SET expires_at = 0
WHERE entity = $1 AND session_id = $2 AND expires_at <> 0
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL`
)
