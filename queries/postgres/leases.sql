-- name: Acquire :one
-- One atomic statement. A free entity (no row, a released row, or an expired
-- lease) is granted to @session_id with a new fencing token from the
-- sequence. A live lease already held by @session_id is refreshed: same
-- token and acquired_at, its expiry pushed to now + @ttl_ms but never
-- brought forward (another handle of the session, a Do call, may count on
-- it; a free row's expiry is at most now). A live lease held by another
-- session is left alone and no row is returned. The token of a row that exists is
-- taken from the sequence after the row is locked, so it is greater than the
-- token it replaces even when the value drawn for the insert is not. "now"
-- is read once, in the subquery (not a CTE: a CTE and a subquery in
-- RETURNING cost the statement about 13 µs, measured). It returns only what
-- the caller does not know: "now" is expires_at - ttl_ms for a grant (whose
-- acquired_at is now), and each column returned costs the client an
-- allocation or more (measured: 4 columns instead of 7 saved 10-16 µs a
-- grant).
INSERT INTO entitylock_leases AS l (entity, session_id, token, acquired_at, expires_at, reclaimed)
SELECT @entity::text, @session_id::text, nextval('entitylock_tokens'), c.now, c.now + @ttl_ms::bigint, false
FROM (SELECT entitylock_clock(sqlc.narg('now')) AS now) AS c
ON CONFLICT (entity) DO UPDATE SET
    token = CASE
        WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at THEN l.token
        WHEN excluded.token > l.token THEN excluded.token
        ELSE nextval('entitylock_tokens') END,
    acquired_at = CASE
        WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at
        THEN l.acquired_at ELSE excluded.acquired_at END,
    reclaimed = CASE
        WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at
        THEN l.reclaimed ELSE l.expires_at > 0 END,
    session_id = excluded.session_id,
    expires_at = greatest(l.expires_at, excluded.expires_at)
WHERE l.expires_at <= excluded.acquired_at
   OR l.session_id = excluded.session_id
RETURNING l.token, l.acquired_at, l.expires_at, l.reclaimed;

-- name: Lease :one
-- The live lease on @entity, if any.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT sqlc.embed(l), c.now::bigint AS now
FROM entitylock_leases AS l, clock AS c
WHERE l.entity = @entity AND l.expires_at > c.now;

-- name: Extend :one
-- Pushes back the expiry of a live lease held by @session_id.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
UPDATE entitylock_leases AS l
SET expires_at = l.expires_at + @by_ms::bigint
FROM clock AS c
WHERE l.entity = @entity AND l.session_id = @session_id AND l.expires_at > c.now
RETURNING sqlc.embed(l);

-- name: Renew :one
-- Sets a new expiry, now + @ttl_ms, on exactly this grant (@entity,
-- @session_id, @token) while it is live. No row: the lease expired, was
-- released, or was taken. A renewal never shortens a lease that Extend
-- pushed further.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
UPDATE entitylock_leases AS l
SET expires_at = greatest(l.expires_at, c.now + @ttl_ms::bigint)
FROM clock AS c
WHERE l.entity = @entity AND l.session_id = @session_id AND l.token = @token
  AND l.expires_at > c.now
RETURNING sqlc.embed(l), c.now;

-- name: Release :execrows
-- Releases @session_id's lease on @entity, live or expired. Like
-- ReleaseGrant, ReleaseSession and ForceRelease, it commits without waiting
-- for the WAL flush: the set_config condition sets synchronous_commit off
-- for the statement's own transaction. Every row the statement changes
-- passed every condition, so it set it; a statement that changes none
-- writes nothing to wait for. (A condition, not a CTE: measured, the CTE
-- and its EXISTS cost a release about 18 µs.) A release lost in a crash of
-- the server leaves the lease as it was, held until it expires: never two
-- holders, only a later grant. Grants stay synchronous.
-- Each release notifies the waiters of other Managers in its RETURNING
-- clause, as the four do (see the end of this file).
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND session_id = @session_id AND expires_at <> 0
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING CASE WHEN pg_try_advisory_xact_lock(1701605740, entitylock_listeners_key()) THEN false
    ELSE pg_notify('entitylock', current_schema() || '/' || entity) IS NOT NULL END::boolean AS notified;

-- name: ReleaseGrant :execrows
-- Releases exactly this grant, live or expired, and nothing newer.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND session_id = @session_id AND token = @token AND expires_at <> 0
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING CASE WHEN pg_try_advisory_xact_lock(1701605740, entitylock_listeners_key()) THEN false
    ELSE pg_notify('entitylock', current_schema() || '/' || entity) IS NOT NULL END::boolean AS notified;

-- name: ReleaseSession :many
-- Releases every lease of @session_id and names the entities freed. The
-- rows are locked in entity (byte) order first, the order AcquireAll writes
-- them in, so the two cannot deadlock.
WITH mine AS (
    SELECT o.entity FROM entitylock_leases AS o
    WHERE o.session_id = @session_id AND o.expires_at <> 0
    ORDER BY o.entity COLLATE "C"
    FOR UPDATE
)
UPDATE entitylock_leases AS l SET expires_at = 0
FROM mine AS m
WHERE l.entity = m.entity AND l.session_id = @session_id AND l.expires_at <> 0
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING l.entity, CASE WHEN pg_try_advisory_xact_lock(1701605740, entitylock_listeners_key()) THEN false
    ELSE pg_notify('entitylock', current_schema() || '/' || l.entity) IS NOT NULL END::boolean AS notified;

-- name: ForceRelease :execrows
-- Releases the lease on @entity whoever holds it.
UPDATE entitylock_leases SET expires_at = 0
WHERE entity = @entity AND expires_at <> 0
  AND set_config('synchronous_commit', 'off', true) IS NOT NULL
RETURNING CASE WHEN pg_try_advisory_xact_lock(1701605740, entitylock_listeners_key()) THEN false
    ELSE pg_notify('entitylock', current_schema() || '/' || entity) IS NOT NULL END::boolean AS notified;

-- name: PurgeCandidates :many
-- Up to @max_rows released or expired rows after @after, in the primary
-- key's order: the next batch of a purge, read without locking.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT l.entity
FROM entitylock_leases AS l, clock AS c
WHERE l.entity > @after::text AND l.expires_at <= c.now
ORDER BY l.entity
LIMIT @max_rows::integer;

-- name: PurgeBatch :execrows
-- Deletes the rows of the JSON array @entities that are still released or
-- expired; the trigger raises the fence. The rows are locked in entity
-- (byte) order, the order AcquireAll and ReleaseSession lock theirs in, and
-- a row another transaction has locked is skipped (it is in flux; a later
-- purge gets it): a purge never waits for a row, so it cannot deadlock with
-- grants, releases or another purge (two purges deleting rows as their
-- scans met them could lock them in opposite orders). Its only wait is for
-- the fence row, which purges alone lock, each after all its rows.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now),
doomed AS (
    SELECT l.entity
    FROM entitylock_leases AS l, clock AS c
    WHERE l.entity IN (SELECT jsonb_array_elements_text(@entities::jsonb))
      AND l.expires_at <= c.now
    ORDER BY l.entity COLLATE "C"
    FOR UPDATE OF l SKIP LOCKED
)
DELETE FROM entitylock_leases AS d
USING doomed
WHERE d.entity = doomed.entity;

-- name: RowCounts :one
-- The rows by state, for operators: live, expired (not yet reclaimed) and
-- released.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT
    count(*) FILTER (WHERE l.expires_at > c.now) AS live,
    count(*) FILTER (WHERE l.expires_at > 0 AND l.expires_at <= c.now) AS expired,
    count(*) FILTER (WHERE l.expires_at = 0) AS released
FROM entitylock_leases AS l, clock AS c;

-- name: LiveLeases :many
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT sqlc.embed(l)
FROM entitylock_leases AS l, clock AS c
WHERE l.expires_at > c.now
ORDER BY l.entity COLLATE "C";

-- name: SessionLeases :many
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT sqlc.embed(l)
FROM entitylock_leases AS l, clock AS c
WHERE l.session_id = @session_id AND l.expires_at > c.now
ORDER BY l.entity COLLATE "C";

-- name: GuardLease :one
-- Whether exactly this grant (@entity, @session_id, @token) is still live,
-- locking its row FOR SHARE until the caller's transaction ends: a
-- takeover, a renewal or a release of the row waits for that transaction.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT l.token
FROM entitylock_leases AS l
WHERE l.entity = @entity AND l.session_id = @session_id AND l.token = @token
  AND l.expires_at > (SELECT c.now FROM clock AS c)
FOR SHARE OF l;

-- name: AllLeases :many
-- Every unreleased row, live or expired, for operators.
SELECT sqlc.embed(l)
FROM entitylock_leases AS l
WHERE l.expires_at > 0
ORDER BY l.entity COLLATE "C";

-- name: AcquireAll :many
-- Acquire for every entity in the JSON array @entities (sorted, distinct),
-- when none is held live by another session: then no row is written and
-- none is returned. Rows are written in the array's order, so two calls on
-- overlapping sets lock shared rows in the same order. A grant that another
-- transaction commits while this statement runs can still make it skip a
-- row: entitylock_all_or_none then fails the statement with SQLSTATE 40001,
-- so that it writes nothing, and the caller tries again.
-- entitylock_all_or_none is called once (an uncorrelated subquery), not
-- once a row. A refresh never brings an expiry forward, as in Acquire. The
-- statement draws one token for all its grants (tokens are ordered per
-- entity only); a row whose token is not below it draws its own, after the
-- row is locked, as in Acquire.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now, nextval('entitylock_tokens') AS token),
wanted AS (
    SELECT w.entity, w.n
    FROM jsonb_array_elements_text(@entities::jsonb) WITH ORDINALITY AS w (entity, n)
),
granted AS (
    INSERT INTO entitylock_leases AS l (entity, session_id, token, acquired_at, expires_at, reclaimed)
    SELECT w.entity, @session_id::text, c.token, c.now, c.now + @ttl_ms::bigint, false
    FROM wanted AS w, clock AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM entitylock_leases AS h
        WHERE h.entity IN (SELECT k.entity FROM wanted AS k)
          AND h.expires_at > c.now AND h.session_id <> @session_id::text
    )
    ORDER BY w.n
    ON CONFLICT (entity) DO UPDATE SET
        token = CASE
            WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at THEN l.token
            WHEN excluded.token > l.token THEN excluded.token
            ELSE nextval('entitylock_tokens') END,
        acquired_at = CASE
            WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at
            THEN l.acquired_at ELSE excluded.acquired_at END,
        reclaimed = CASE
            WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.acquired_at
            THEN l.reclaimed ELSE l.expires_at > 0 END,
        session_id = excluded.session_id,
        expires_at = greatest(l.expires_at, excluded.expires_at)
    WHERE l.expires_at <= excluded.acquired_at
       OR l.session_id = excluded.session_id
    RETURNING l.entity, l.token, l.acquired_at, l.expires_at, l.reclaimed
)
SELECT g.entity, g.token, g.acquired_at, g.expires_at, g.reclaimed, (SELECT c.now FROM clock AS c)::bigint AS now
FROM granted AS g
WHERE (SELECT entitylock_all_or_none((SELECT count(*) FROM granted), (SELECT count(*) FROM wanted)));

-- name: FirstHeld :one
-- The first entity, by name, of the JSON array @entities that another
-- session than @session_id holds live.
WITH clock AS (SELECT entitylock_clock(sqlc.narg('now')) AS now)
SELECT sqlc.embed(l), c.now::bigint AS now
FROM entitylock_leases AS l, clock AS c
WHERE l.entity IN (SELECT jsonb_array_elements_text(@entities::jsonb))
  AND l.expires_at > c.now AND l.session_id <> @session_id
ORDER BY l.entity COLLATE "C"
LIMIT 1;

-- About this file (at its end because sqlc attaches every comment above a
-- statement, blank lines or not, to that statement's generated doc).
-- The PostgreSQL statements of the lock package. Every time is Unix
-- milliseconds. Each statement reads "now" once, in its clock CTE (Acquire:
-- in a subquery): entitylock_clock(@now) is the caller's reading when given
-- (tests inject a clock), else the server's clock_timestamp(); statements
-- that decide on time return the reading they used. A row whose expires_at
-- is 0 is a released lease kept for its token.
-- Release notifications: the releases (Release, ReleaseGrant,
-- ReleaseSession, ForceRelease) compute "notified" for each row they
-- release. It tries the listener registry's advisory lock exclusively
-- (schema/postgres, version 2), held until the release commits: got, no
-- Manager listens on this schema, and none is told; not got, it sends
-- "<schema>/<entity>" on channel "entitylock", delivered at commit to the
-- Managers listening (lock/listen_postgres.go), which compare the schema
-- with their own current_schema(). CASE, not OR: its order is kept.
