CREATE FUNCTION entitylock_notify_release() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('entitylock', TG_TABLE_SCHEMA || '/' || NEW.entity);
    RETURN NULL;
END
$$;

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

ALTER TABLE entitylock_leases
    ADD CONSTRAINT entitylock_leases_entity_check CHECK (entity <> ''),
    ADD CONSTRAINT entitylock_leases_session_id_check CHECK (session_id <> ''),
    ADD CONSTRAINT entitylock_leases_token_check CHECK (token > 0),
    ADD CONSTRAINT entitylock_leases_expires_at_check CHECK (expires_at >= 0);
