DROP TRIGGER IF EXISTS entitylock_leases_released ON entitylock_leases;
DROP FUNCTION IF EXISTS entitylock_notify_release();
DROP FUNCTION IF EXISTS entitylock_clock(bigint);
DROP SEQUENCE IF EXISTS entitylock_tokens;
DROP TABLE IF EXISTS entitylock_leases;
