-- Leases: one row per entity that is, or was, locked. Times are Unix
-- milliseconds (INTEGER), bound by the caller so that tests can move the
-- clock. A lease is live while now < expires_at. Releasing a lease sets
-- expires_at to 0 and keeps the row, with its token, so the next grant of the
-- entity takes token + 1 without any other write; PurgeExpired deletes such
-- rows and expired ones.
CREATE TABLE entitylock_leases (
    entity      TEXT    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL,
    token       INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- 1 when this grant began by reclaiming an expired lease.
    reclaimed   INTEGER NOT NULL DEFAULT 0 CHECK (reclaimed IN (0, 1)),
    CHECK (length(entity) > 0),
    CHECK (length(session_id) > 0),
    CHECK (token > 0),
    CHECK (expires_at >= 0)
) STRICT, WITHOUT ROWID;

-- Who holds which row, for per-session operations (ReleaseAll,
-- Session.Locks): they seek here instead of scanning the leases, O(k log n)
-- for a session with k of n rows. Triggers keep it equal to the leases'
-- (session_id, entity) pairs, writing it only when a row's holder changes,
-- so a session that re-locks an entity writes one page, not two.
CREATE TABLE entitylock_owners (
    session_id TEXT NOT NULL,
    entity     TEXT NOT NULL,
    PRIMARY KEY (session_id, entity)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER entitylock_owners_insert
AFTER INSERT ON entitylock_leases
BEGIN
    INSERT INTO entitylock_owners (session_id, entity) VALUES (NEW.session_id, NEW.entity);
END;

CREATE TRIGGER entitylock_owners_update
AFTER UPDATE OF session_id ON entitylock_leases
WHEN NEW.session_id <> OLD.session_id
BEGIN
    DELETE FROM entitylock_owners WHERE session_id = OLD.session_id AND entity = OLD.entity;
    INSERT INTO entitylock_owners (session_id, entity) VALUES (NEW.session_id, NEW.entity);
END;

-- The fencing floor: the largest token of any deleted row. A new row's first
-- token is last_token + 1, so an entity whose row was purged still gets a
-- token greater than any it had. Only deletes (PurgeExpired, or an operator
-- by hand) write it, through the trigger, in the deleting statement.
CREATE TABLE entitylock_fence (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_token INTEGER NOT NULL
) STRICT;

INSERT INTO entitylock_fence (id, last_token) VALUES (1, 0);

CREATE TRIGGER entitylock_leases_delete
AFTER DELETE ON entitylock_leases
BEGIN
    UPDATE entitylock_fence SET last_token = OLD.token
    WHERE id = 1 AND last_token < OLD.token;
    DELETE FROM entitylock_owners WHERE session_id = OLD.session_id AND entity = OLD.entity;
END;
