-- name: LiveOf :many
-- The live leases among the entities of the JSON array @entities: what a
-- Manager with waiters reads when another connection committed, to wake
-- only the lines whose entity is free (lock/watch_sqlite.go).
SELECT entity, session_id, token
FROM entitylock_leases
WHERE entity IN (SELECT j.value FROM json_each(CAST(@entities AS TEXT)) AS j)
  AND expires_at > @now;

-- name: LiveOne :many
-- LiveOf for a single entity, the usual case: a plain key lookup, cheaper
-- to run than the JSON array's.
SELECT session_id, token
FROM entitylock_leases
WHERE entity = @entity
  AND expires_at > @now;
