DROP FUNCTION IF EXISTS entitylock_all_or_none(bigint, bigint);
DROP FUNCTION IF EXISTS entitylock_listen();

CREATE OR REPLACE FUNCTION entitylock_notify_release() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('entitylock', TG_TABLE_SCHEMA || '/' || NEW.entity);
    RETURN NULL;
END
$$;
