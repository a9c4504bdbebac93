-- Writes without work PostgreSQL redoes for every statement. A table's
-- CHECK constraints and a row trigger's WHEN condition are read and
-- prepared anew by each statement that writes the table, prepared
-- statements too (executor start, not planning), and a release then
-- called pg_try_advisory_xact_lock from the trigger. Measured on a grant
-- and a release (bench/pgvariants, 2026-11-26 18:19 UTC, 4,000 pairs in
-- rotating order, p50): a release 96 µs with the one CHECK left after
-- folding the four into one against 75 µs with none, the grant 208
-- against 191 µs; the release trigger's WHEN cost about 8 µs more.
--
-- The CHECKs go. Every value the library writes is checked before it is
-- sent (an empty entity or session is refused with ErrInvalidEntity or
-- ErrInvalidSession, nothing written); tokens come from the sequence,
-- which starts at 1, and expiries from the clock plus a TTL above zero.
-- Writers other than the library are on their own, as with any table.
ALTER TABLE entitylock_leases
    DROP CONSTRAINT entitylock_leases_entity_check,
    DROP CONSTRAINT entitylock_leases_session_id_check,
    DROP CONSTRAINT entitylock_leases_token_check,
    DROP CONSTRAINT entitylock_leases_expires_at_check;

-- The release trigger goes: each release statement of the library notifies
-- in its RETURNING clause, for the rows it released, with the same
-- registry test (queries/postgres/leases.sql). A release written by hand
-- no longer notifies, nor does one by a process still running code older
-- than this version; waiters learn of those at their next poll.
DROP TRIGGER entitylock_leases_released ON entitylock_leases;
DROP FUNCTION entitylock_notify_release();
