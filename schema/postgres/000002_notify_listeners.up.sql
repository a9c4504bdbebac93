-- A release notifies only while some Manager listens for this schema.
-- NOTIFY is not free even when nobody listens: the commit takes a lock
-- that serializes every notifying commit of the server, writes the
-- notification queue and signals every backend listening on the channel
-- in the database (Managers of other schemas too).
--
-- The registry is an advisory lock, keyed by schema: a Manager's listening
-- connection holds it in shared mode (entitylock_listen) from after its
-- LISTEN until the connection ends, so a crashed listener leaves nothing
-- behind. A release tries to take it exclusively until its transaction
-- ends. Should it get it, nobody listens, and it sends nothing; a listener
-- that registers meanwhile waits for that release to commit, and only then
-- wakes its waiters, which see the release. Should it not (a listener, or
-- another release holding it), it notifies as before. Locks, unlike rows,
-- are seen as they are now, whatever the isolation level of the release.
CREATE OR REPLACE FUNCTION entitylock_notify_release() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('entitylock_listeners'), hashtext(TG_TABLE_SCHEMA)) THEN
        PERFORM pg_notify('entitylock', TG_TABLE_SCHEMA || '/' || NEW.entity);
    END IF;
    RETURN NULL;
END
$$;

-- Registers the calling connection, which has run LISTEN entitylock, as a
-- listener for the current schema until it closes. It waits for releases
-- that found no listener to commit.
CREATE FUNCTION entitylock_listen() RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_lock_shared(hashtext('entitylock_listeners'), hashtext(current_schema())) $$;

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
