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

-- The fence: the largest token of any deleted row. A grant that inserts a
-- row draws its token before the insert; were that entity's row granted a
-- greater token, released and purged in between, the new row would start
-- below it. So each delete statement raises the fence, and an inserted row
-- whose token is not above the fence is refused with SQLSTATE 40001
-- (serialization_failure), which the library retries with a new token.
-- (Rows of existing entities draw their token after locking the row.)
CREATE TABLE entitylock_fence (
    id         integer NOT NULL PRIMARY KEY CHECK (id = 1),
    last_token bigint  NOT NULL
);

INSERT INTO entitylock_fence (id, last_token) VALUES (1, 0);

CREATE FUNCTION entitylock_fence_raise() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE entitylock_fence SET last_token = d.top
    FROM (SELECT max(token) AS top FROM gone) AS d
    WHERE id = 1 AND d.top > last_token;
    RETURN NULL;
END
$$;

CREATE TRIGGER entitylock_leases_deleted
AFTER DELETE ON entitylock_leases
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT
EXECUTE FUNCTION entitylock_fence_raise();

-- Runs after the row is in, with a snapshot of its own (a volatile
-- function's statement), so it sees a purge that committed meanwhile.
CREATE FUNCTION entitylock_fence_check() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.token <= (SELECT f.last_token FROM entitylock_fence AS f WHERE f.id = 1) THEN
        RAISE EXCEPTION 'entitylock: token % of new row "%" is not above the fence of a purge', NEW.token, NEW.entity
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER entitylock_leases_inserted
AFTER INSERT ON entitylock_leases
FOR EACH ROW
EXECUTE FUNCTION entitylock_fence_check();

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
