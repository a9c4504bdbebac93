DROP TRIGGER IF EXISTS entitylock_leases_fence_update;
DROP TRIGGER IF EXISTS entitylock_leases_fence_insert;
DROP TABLE IF EXISTS entitylock_fence;
DROP INDEX IF EXISTS entitylock_leases_session;
DROP TABLE IF EXISTS entitylock_leases;
