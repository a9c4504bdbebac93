DROP FUNCTION IF EXISTS entitylock_all_or_none(bigint, bigint);
DROP FUNCTION IF EXISTS entitylock_listen();

DROP TRIGGER IF EXISTS entitylock_leases_released ON entitylock_leases;
CREATE TRIGGER entitylock_leases_released
AFTER UPDATE OF expires_at ON entitylock_leases
FOR EACH ROW WHEN (NEW.expires_at = 0 AND OLD.expires_at <> 0)
EXECUTE FUNCTION entitylock_notify_release();

DROP FUNCTION IF EXISTS entitylock_listeners_key();

ALTER TABLE entitylock_leases
    DROP CONSTRAINT entitylock_leases_entity_check,
    DROP CONSTRAINT entitylock_leases_session_id_check,
    ADD CONSTRAINT entitylock_leases_entity_check CHECK (length(entity) > 0),
    ADD CONSTRAINT entitylock_leases_session_id_check CHECK (length(session_id) > 0);
