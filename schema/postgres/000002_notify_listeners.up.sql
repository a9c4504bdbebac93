-- A release notifies only while some Manager listens for this schema.
-- NOTIFY is not free even when nobody listens: the commit takes a lock
-- that serializes every notifying commit of the server, writes the
-- notification queue and signals every backend listening on the channel
-- in the database (Managers of other schemas too).
--
-- The registry is an advisory lock keyed by the leases table: a Manager's
-- listening connection holds it in shared mode (entitylock_listen) from
-- after its LISTEN until the connection ends, so a crashed listener leaves
-- nothing behind. A release tries to take it exclusively, in the trigger's
-- WHEN condition, until its transaction ends. Should it get it, nobody
-- listens: the trigger does not fire, and a listener that registers
-- meanwhile waits for that release to commit, and only then wakes its
-- waiters, which see the release. Should it not (a listener, or another
-- release holding it), the trigger notifies as before. Locks, unlike rows,
-- are seen as they are now, whatever the isolation level of the release.
-- The key is a constant of this library and the table's OID, written into
-- the trigger here, so it holds whatever the search_path of the releasing
-- session. Skipping the trigger when nobody listens also skips the call of
-- its function, which cost a release about 10 µs (bench/pgbreakdown).
CREATE FUNCTION entitylock_listeners_key() RETURNS integer
LANGUAGE sql STABLE
AS $$ SELECT ('entitylock_leases'::regclass::oid::bigint % 2147483648)::integer $$;

DROP TRIGGER entitylock_leases_released ON entitylock_leases;

DO $$
BEGIN
    EXECUTE format($t$
        CREATE TRIGGER entitylock_leases_released
        AFTER UPDATE OF expires_at ON entitylock_leases
        FOR EACH ROW
        WHEN (NEW.expires_at = 0 AND OLD.expires_at <> 0
              AND NOT pg_try_advisory_xact_lock(1701605740, %s))
        EXECUTE FUNCTION entitylock_notify_release()$t$, entitylock_listeners_key());
END
$$;

-- Registers the calling connection, which has run LISTEN entitylock, as a
-- listener for this schema's releases until it closes. It waits for the
-- releases that found no listener to commit.
CREATE FUNCTION entitylock_listen() RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_lock_shared(1701605740, entitylock_listeners_key()) $$;

-- The same checks as version 1's length(entity) > 0 and length(session_id)
-- > 0, at less cost to every write: measured, the two length() checks cost
-- a grant or a release about 8 µs (bench/pgbreakdown). Every row already
-- passed the old checks, so the new ones need not scan the table.
ALTER TABLE entitylock_leases
    DROP CONSTRAINT entitylock_leases_entity_check,
    DROP CONSTRAINT entitylock_leases_session_id_check,
    ADD CONSTRAINT entitylock_leases_entity_check CHECK (entity <> '') NOT VALID,
    ADD CONSTRAINT entitylock_leases_session_id_check CHECK (session_id <> '') NOT VALID;

-- AcquireAll's guard, so that it needs no transaction of its own: under READ
-- COMMITTED a grant another transaction commits while the statement runs
-- can make it skip a row. Granted some but not all of the wanted rows, the
-- statement fails with SQLSTATE 40001 (serialization_failure) and writes
-- nothing; the library tries again. True when all were granted.
CREATE FUNCTION entitylock_all_or_none(granted bigint, wanted bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    IF granted <> 0 AND granted <> wanted THEN
        RAISE EXCEPTION 'entitylock: granted % of % entities', granted, wanted
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN granted = wanted;
END
$$;
