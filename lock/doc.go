// Package lock provides advisory, time-bounded locks ("leases") on named
// entities, stored in a table that any number of goroutines and processes
// share: in SQLite for agents on one machine, or in PostgreSQL for agents on
// several. The API and its guarantees are the same on both; the package
// locktest holds the behaviour suite that both engines pass.
//
// A [Manager] owns the database handle; a [Session] acquires and releases
// leases under one session id. A lease lasts its TTL unless refreshed,
// extended or released: a holder that crashes blocks others only until its
// lease expires, after which the next TryAcquire reclaims the entity.
//
//	m, err := lock.Open(ctx, "agents.db") // or "postgres://host/db"
//	...
//	s, err := m.Session("agent-7")
//	l, err := s.Acquire(ctx, "entity::Foo")
//	if errors.Is(err, lock.ErrHeld) { ... someone else has it ... }
//	defer s.Release(ctx, "entity::Foo")
//
// # Time
//
// A lease is live while now < ExpiresAt, at millisecond resolution. On
// SQLite "now" is the Manager's clock (time.Now), bound into the SQL. On
// PostgreSQL it is the server's clock_timestamp(), read in each statement, so
// machines whose clocks disagree still agree on every lease; [Manager.Now]
// and [Session.Do]'s deadlines use the local clock corrected by the server's
// offset. [WithClock] replaces either, for tests.
//
// # Waiting
//
// [Session.Acquire] waits in a first-come-first-served line per entity and
// Manager; a release through the same Manager wakes the next waiter at once.
// Releases by other processes wake it too: on PostgreSQL (any machine)
// through LISTEN/NOTIFY, on SQLite through a wake file beside the database
// (its name plus "-wake"), watched while the Manager has waiters. Waiters also poll on the retry
// policy's backoff, never later than the holder's expiry.
//
// # Fencing
//
// Every new grant of an entity carries a token greater than any that entity
// had before, across releases, expiry takeovers, [Manager.ForceRelease] and
// [Manager.PurgeExpired]. Only their order per entity is promised: on
// SQLite each entity counts up from its own floor, on PostgreSQL all tokens
// come from one sequence, so two entities may or may not share a value. A holder whose lease lapsed can still be running; passing the
// token to the protected resource lets it refuse the stale holder's writes,
// and [Manager.Guard] checks it inside a transaction on the same database,
// holding off any takeover until that transaction ends.
//
// # Errors
//
// Errors name the operation and entity that failed (`lock: acquire
// "entity::Foo": …`) and wrap a sentinel for errors.Is: [ErrHeld] (as a
// [*HeldError] naming the holder), [ErrNotHeld], [ErrLeaseLost] (as a
// [*LeaseLostError]), [ErrNotReleased], [ErrInvalidEntity],
// [ErrInvalidSession], [ErrInvalidDuration], [ErrInvalidOption],
// [ErrInvalidDSN], [ErrDiskFull], [ErrDatabaseReplaced], [ErrSchemaTooNew],
// [ErrSchemaDirty], [ErrSchemaMissing], [ErrClosed].
// Bad input is rejected before the database is touched.
package lock
