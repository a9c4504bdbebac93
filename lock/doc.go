// Package lock provides advisory, time-bounded locks ("leases") on named
// entities, stored in a SQLite table that any number of goroutines and
// processes share.
//
// A [Manager] owns the database handle; a [Session] acquires and releases
// leases under one session id. A lease lasts its TTL unless refreshed,
// extended or released: a holder that crashes blocks others only until its
// lease expires, after which the next TryAcquire reclaims the entity.
//
//	m, err := lock.Open(ctx, "agents.db")
//	...
//	s, err := m.Session("agent-7")
//	l, err := s.Acquire(ctx, "entity::Foo")
//	if errors.Is(err, lock.ErrHeld) { ... someone else has it ... }
//	defer s.Release(ctx, "entity::Foo")
//
// # Time
//
// Every decision uses "now" from the Manager's clock ([WithClock], default
// time.Now) at millisecond resolution, bound into the SQL; the database clock
// is never read. A lease is live while now < ExpiresAt.
//
// # Fencing
//
// Every new grant of an entity carries a token greater than any that entity
// had before, across releases, expiry takeovers, [Manager.ForceRelease] and
// [Manager.PurgeExpired]. Tokens are per entity: two entities may hold the
// same value. A holder whose lease lapsed can still be running; passing the
// token to the protected resource lets it refuse the stale holder's writes,
// and [Manager.Guard] checks it inside a transaction on the same database.
//
// # Errors
//
// Errors name the operation and entity that failed (`lock: acquire
// "entity::Foo": …`) and wrap a sentinel for errors.Is: [ErrHeld] (as a
// [*HeldError] naming the holder), [ErrNotHeld], [ErrInvalidEntity],
// [ErrInvalidSession], [ErrInvalidDuration], [ErrInvalidOption], [ErrClosed].
// Bad input is rejected before the database is touched.
package lock
