-- Leases: one row per entity that is, or recently was, locked.
-- Times are Unix milliseconds (INTEGER), bound by the caller so that tests can
-- move the clock. A lease is live while now < expires_at.
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
    CHECK (expires_at > acquired_at)
) STRICT, WITHOUT ROWID;

-- Per-session operations (ReleaseAll, Session.Locks) seek this index instead
-- of scanning the table: O(k log n) for a session holding k of n rows.
CREATE INDEX entitylock_leases_session ON entitylock_leases (session_id, entity);

-- The fencing high-water mark: the largest token ever granted. It survives
-- Release, ForceRelease and PurgeExpired deleting rows, so a new grant of any
-- entity always gets a token greater than any that entity ever had.
CREATE TABLE entitylock_fence (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last_token INTEGER NOT NULL
) STRICT;

INSERT INTO entitylock_fence (id, last_token) VALUES (1, 0);

-- Every new grant takes last_token + 1 (see queries/leases.sql); these
-- triggers advance the mark inside the same statement, so the grant and the
-- mark commit or roll back together.
CREATE TRIGGER entitylock_leases_fence_insert
AFTER INSERT ON entitylock_leases
BEGIN
    UPDATE entitylock_fence SET last_token = NEW.token
    WHERE id = 1 AND last_token < NEW.token;
END;

CREATE TRIGGER entitylock_leases_fence_update
AFTER UPDATE OF token ON entitylock_leases
WHEN NEW.token <> OLD.token
BEGIN
    UPDATE entitylock_fence SET last_token = NEW.token
    WHERE id = 1 AND last_token < NEW.token;
END;
