-- name: Acquire :one
-- One atomic statement; times are Unix milliseconds from the caller's clock.
-- A free entity, or one whose lease expired, is granted
-- to @session_id with a new fencing token; a live lease already held by
-- @session_id is refreshed (new expiry, same token and acquired_at). A live
-- lease held by another session is left alone and no row is returned.
-- reclaimed is 1 when the grant took over an expired lease.
INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at)
VALUES (
    @entity,
    @session_id,
    (SELECT f.last_token + 1 FROM entitylock_fence AS f WHERE f.id = 1),
    @now,
    @expires_at
)
ON CONFLICT (entity) DO UPDATE SET
    token = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.token ELSE excluded.token END,
    acquired_at = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.acquired_at ELSE excluded.acquired_at END,
    reclaimed = CASE
        WHEN entitylock_leases.session_id = excluded.session_id
         AND entitylock_leases.expires_at > excluded.acquired_at
        THEN entitylock_leases.reclaimed ELSE entitylock_leases.expires_at <= excluded.acquired_at END,
    session_id = excluded.session_id,
    expires_at = excluded.expires_at
WHERE entitylock_leases.expires_at <= excluded.acquired_at
   OR entitylock_leases.session_id = excluded.session_id
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Lease :one
-- The live lease on @entity, if any.
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE entity = @entity AND expires_at > @now;

-- name: Extend :one
-- Pushes back the expiry of a live lease held by @session_id.
UPDATE entitylock_leases
SET expires_at = expires_at + @by_ms
WHERE entity = @entity AND session_id = @session_id AND expires_at > @now
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Renew :one
-- Sets a new expiry on exactly this grant (@entity, @session_id, @token)
-- while it is live. No row: the lease expired, was released, or was taken.
-- A renewal never shortens a lease that Extend pushed further.
UPDATE entitylock_leases
SET expires_at = max(expires_at, CAST(@expires_at AS INTEGER))
WHERE entity = @entity AND session_id = @session_id AND token = @token
  AND expires_at > @now
RETURNING entity, session_id, token, acquired_at, expires_at, reclaimed;

-- name: Release :execrows
-- Removes @session_id's lease on @entity, live or expired.
DELETE FROM entitylock_leases
WHERE entity = @entity AND session_id = @session_id;

-- name: ReleaseGrant :execrows
-- Removes exactly this grant, live or expired, and nothing newer.
DELETE FROM entitylock_leases
WHERE entity = @entity AND session_id = @session_id AND token = @token;

-- name: ReleaseSession :many
-- Removes every lease of @session_id (seeks the session index) and names
-- the entities freed.
DELETE FROM entitylock_leases
WHERE session_id = @session_id
RETURNING entity;

-- name: ForceRelease :execrows
-- Removes the lease on @entity whoever holds it.
DELETE FROM entitylock_leases
WHERE entity = @entity;

-- name: PurgeExpired :execrows
DELETE FROM entitylock_leases
WHERE expires_at <= @now;

-- name: LiveLeases :many
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE expires_at > @now
ORDER BY entity;

-- name: SessionLeases :many
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
WHERE session_id = @session_id AND expires_at > @now
ORDER BY entity;

-- name: IsLive :one
-- Whether exactly this grant (@entity, @session_id, @token) is still live.
SELECT EXISTS (
    SELECT 1 FROM entitylock_leases
    WHERE entity = @entity AND session_id = @session_id
      AND token = @token AND expires_at > @now
) AS live;

-- name: AllLeases :many
-- Every row, live or expired, for operators.
SELECT entity, session_id, token, acquired_at, expires_at, reclaimed
FROM entitylock_leases
ORDER BY entity;
