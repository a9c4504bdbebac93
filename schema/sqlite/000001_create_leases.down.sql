DROP TRIGGER IF EXISTS entitylock_leases_delete;
DROP TRIGGER IF EXISTS entitylock_owners_update;
DROP TRIGGER IF EXISTS entitylock_owners_insert;
DROP TABLE IF EXISTS entitylock_fence;
DROP TABLE IF EXISTS entitylock_owners;
DROP TABLE IF EXISTS entitylock_leases;
