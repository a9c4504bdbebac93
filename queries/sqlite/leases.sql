-- name: Acquire :many
-- One atomic statement. A free entity (no row, a released row, or an expired
-- lease) is granted to @session_id with a new fencing token: the row's token
-- + 1, or for a new row the fence floor + 1. A live lease already held by
-- @session_id is refreshed: same token and acquired_at, its expiry pushed
-- to @expires_at but never brought forward (another handle of the session,
-- a Do call, may count on it; a free row's expiry is at most @now, below
-- @expires_at). A live lease held by another session is left alone and no
-- row is returned.
-- reclaimed is 1 when the grant took over an expired (not released) lease.
INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at, reclaimed)
VALUES (
    @entity,
    @session_id,
    (SELECT f.last_token + 1 FROM entitylock_fence AS f WHERE f.id = 1),
    @now,
    @expires_at,
    0
)
ON CONFLICT (entity) DO UPDATE SET
    token = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.token ELSE entitylock_leases.token + 1 END,
    acquired_at = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.acquired_at ELSE excluded.acquired_at END,
    reclaimed = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.reclaimed
        ELSE entitylock_leases.expires_at > 0 AND entitylock_leases.expires_at <= excluded.acquired_at END,
    session_id = excluded.session_id,
    expires_at = max(entitylock_leases.expires_at, excluded.expires_at)
WHERE entitylock_leases.expires_at <= excluded.acquired_at
   OR entitylock_leases.session_id = excluded.session_id
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Lease :many
-- The live lease on @entity, if any.
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE entity = @entity AND expires_at > @now;

-- name: Extend :many
-- Pushes back the expiry of a live lease held by @session_id.
UPDATE entitylock_leases
SET expires_at = expires_at + @by_ms
WHERE entity = @entity AND session_id = @session_id AND expires_at > @now
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Renew :many
-- Sets a new expiry on exactly this grant (@entity, @session_id, @token)
-- while it is live. No row: the lease expired, was released, or was taken.
-- A renewal never shortens a lease that Extend pushed further.
UPDATE entitylock_leases
SET expires_at = max(expires_at, CAST(@expires_at AS INTEGER))
WHERE entity = @entity AND session_id = @session_id AND token = @token
  AND expires_at > @now
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Release :execrows
-- Releases @session_id's lease on @entity, live or expired.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND session_id = @session_id AND expires_at <> 0;

-- name: ReleaseGrant :execrows
-- Releases exactly this grant, live or expired, and nothing newer.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND session_id = @session_id AND token = @token AND expires_at <> 0;

-- name: ReleaseSession :many
-- Releases every lease of @session_id, found through entitylock_owners, and
-- names the entities freed.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity IN (SELECT o.entity FROM entitylock_owners AS o WHERE o.session_id = @session_id)
  AND session_id = @session_id AND expires_at <> 0
RETURNING entity;

-- name: ForceRelease :execrows
-- Releases the lease on @entity whoever holds it.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND expires_at <> 0;

-- name: PurgeCandidates :many
-- Up to @max_rows released or expired rows after @after, in entity order: the
-- next batch of a purge, read without the write lock.
SELECT entity
FROM entitylock_leases
WHERE entity > @after AND expires_at <= @now
ORDER BY entity
LIMIT @max_rows;

-- name: PurgeBatch :execrows
-- Deletes the rows of the JSON array @entities that are still released or
-- expired; the trigger raises the fence floor.
DELETE FROM entitylock_leases
WHERE entity IN (SELECT j.value FROM json_each(CAST(@entities AS TEXT)) AS j)
  AND expires_at <= @now;

-- name: RowCounts :many
-- The rows by state, for operators: live, expired (not yet reclaimed) and
-- released.
SELECT
    CAST(coalesce(sum(expires_at > @now), 0) AS INTEGER) AS live,
    CAST(coalesce(sum(expires_at > 0 AND expires_at <= @now), 0) AS INTEGER) AS expired,
    CAST(coalesce(sum(expires_at = 0), 0) AS INTEGER) AS released
FROM entitylock_leases;

-- name: LiveLeases :many
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE expires_at > @now
ORDER BY entity;

-- name: SessionLeases :many
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE entity IN (SELECT o.entity FROM entitylock_owners AS o WHERE o.session_id = @session_id)
  AND session_id = @session_id AND expires_at > @now
ORDER BY entity;

-- name: IsLive :many
-- Whether exactly this grant (@entity, @session_id, @token) is still live.
SELECT EXISTS (
    SELECT 1 FROM entitylock_leases
    WHERE entity = @entity AND session_id = @session_id
      AND token = @token AND expires_at > @now
) AS live;

-- name: AllLeases :many
-- Every unreleased row, live or expired, for operators.
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE expires_at > 0
ORDER BY entity;

-- name: AcquireAllFree :execrows
-- AcquireAll's fast path, for the usual case: every entity of the JSON
-- array @entities is new or released. Each is then granted to @session_id
-- with the one token @token, and nothing needs to come back (returning a
-- row per entity costs more than the writes: BENCHMARKS.md, P4). When any
-- entity has a lease, live or expired, or a token not below @token, the
-- statement fails with SQLITE_CONSTRAINT_NOTNULL (the NULL session_id the
-- CASE gives such a row), which undoes all its writes; when @token is not
-- above the fence, it writes nothing. Either way the caller runs AcquireAll.
-- A new row's token is above the fence, an existing row's above its last:
-- tokens of an entity only grow, whatever @token the caller guessed.
INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at, reclaimed)
SELECT j.value, @session_id, @token, @now, @expires_at, 0
FROM json_each(CAST(@entities AS TEXT)) AS j
WHERE @token > (SELECT f.last_token FROM entitylock_fence AS f WHERE f.id = 1)
ON CONFLICT (entity) DO UPDATE SET
    session_id = CASE
        WHEN entitylock_leases.expires_at = 0 AND entitylock_leases.token < excluded.token
        THEN excluded.session_id END,
    token = excluded.token,
    acquired_at = excluded.acquired_at,
    expires_at = excluded.expires_at,
    reclaimed = 0;

-- name: AcquireAll :many
-- Acquire for every entity in the JSON array @entities, in one atomic
-- statement, or for none: when any is held live by another session, no row
-- is granted or refreshed and none is returned. Every row returned is held
-- by @session_id; a refresh never brings an expiry forward, as in Acquire.
INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at, reclaimed)
SELECT
    j.value,
    @session_id,
    (SELECT f.last_token + 1 FROM entitylock_fence AS f WHERE f.id = 1),
    @now,
    @expires_at,
    0
FROM json_each(CAST(@entities AS TEXT)) AS j
WHERE NOT EXISTS (
    SELECT 1 FROM json_each(CAST(@entities AS TEXT)) AS k
    JOIN entitylock_leases AS h ON h.entity = k.value
    WHERE h.expires_at > @now AND h.session_id <> @session_id
)
ON CONFLICT (entity) DO UPDATE SET
    token = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.token ELSE entitylock_leases.token + 1 END,
    acquired_at = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.acquired_at ELSE excluded.acquired_at END,
    reclaimed = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.reclaimed
        ELSE entitylock_leases.expires_at > 0 AND entitylock_leases.expires_at <= excluded.acquired_at END,
    session_id = excluded.session_id,
    expires_at = max(entitylock_leases.expires_at, excluded.expires_at)
WHERE entitylock_leases.expires_at <= excluded.acquired_at
   OR entitylock_leases.session_id = excluded.session_id
RETURNING entity, token, acquired_at, expires_at, reclaimed;

-- name: FirstHeld :many
-- The first entity, by name, of the JSON array @entities that another
-- session than @session_id holds live.
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE entity IN (SELECT j.value FROM json_each(CAST(@entities AS TEXT)) AS j)
  AND expires_at > @now AND session_id <> @session_id
ORDER BY entity
LIMIT 1;

-- About this file (at its end because sqlc attaches every comment above a
-- statement, blank lines or not, to that statement's generated doc).
-- The SQLite statements of the lock package. Every time is Unix
-- milliseconds from the caller's clock (@now); the database clock is never
-- read. A row whose expires_at is 0 is a released lease kept for its token.
--
-- No statement is :one. database/sql's QueryRow resets a statement after its
-- first row, before it steps to SQLITE_DONE, and SQLite runs its automatic
-- WAL checkpoint only when a write statement steps to SQLITE_DONE: a process
-- whose writes all returned rows through QueryRow never checkpointed, and
-- its -wal file grew without bound. :many reads every row, to SQLITE_DONE.
-- This holds for every file of queries/sqlite (TestSQLiteQueriesReadToDone).
