-- Leases: one row per entity that is, or was, locked. Times are Unix
-- milliseconds (bigint), as in the SQLite schema, read from the server's
-- clock by entitylock_clock unless the caller passes its own (tests do).
-- A lease is live while now < expires_at. Releasing a lease sets expires_at
-- to 0 and keeps the row, with its token; PurgeExpired deletes such rows and
-- expired ones.
CREATE TABLE entitylock_leases (
    entity      text    NOT NULL PRIMARY KEY,
    session_id  text    NOT NULL,
    token       bigint  NOT NULL,
    acquired_at bigint  NOT NULL,
    expires_at  bigint  NOT NULL,
    -- true when this grant began by reclaiming an expired lease.
    reclaimed   boolean NOT NULL DEFAULT false,
    CHECK (length(entity) > 0),
    CHECK (length(session_id) > 0),
    CHECK (token > 0),
    CHECK (expires_at >= 0)
) WITH (fillfactor = 80); -- room for HOT updates: renewals and releases touch no index

-- ReleaseAll and Session.Locks seek a session's rows here.
CREATE INDEX entitylock_leases_session ON entitylock_leases (session_id);

-- Fencing tokens: every new grant takes the next value, so tokens of one
-- entity only grow, across releases, takeovers and purges.
CREATE SEQUENCE entitylock_tokens AS bigint;

-- "Now" for one statement: the caller's reading when given, else the
-- server's clock. clock_timestamp(), not now(), which stands still for the
-- whole transaction.
CREATE FUNCTION entitylock_clock(at bigint) RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$ SELECT coalesce(at, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) $$;

-- A release (expires_at set to 0) notifies the waiters of every process
-- listening on channel "entitylock"; the payload is "<schema>/<entity>", so
-- Managers on other schemas of the database can ignore it. The
-- notification is sent when the releasing transaction commits.
CREATE FUNCTION entitylock_notify_release() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('entitylock', TG_TABLE_SCHEMA || '/' || NEW.entity);
    RETURN NULL;
END
$$;

CREATE TRIGGER entitylock_leases_released
AFTER UPDATE OF expires_at ON entitylock_leases
FOR EACH ROW WHEN (NEW.expires_at = 0 AND OLD.expires_at <> 0)
EXECUTE FUNCTION entitylock_notify_release();
