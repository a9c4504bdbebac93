-- name: LiveOf :many
-- The live leases among the entities of the JSON array @entities: what a
-- Manager with waiters reads when it starts to watch for an entity's
-- release, to wake the lines whose entity is free (lock/watch_sqlite.go).
SELECT entity, session_id, token
FROM entitylock_leases
WHERE entity IN (SELECT j.value FROM json_each(CAST(@entities AS TEXT)) AS j)
  AND expires_at > @now;
