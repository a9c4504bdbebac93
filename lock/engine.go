package lock

import (
	"context"
	"database/sql"
)

// engine is what the locking policy of this package (retries, waiting,
// renewal, fencing checks, statistics) needs from a database: one method per
// statement, each atomic. Each engine wraps the code that sqlc generated
// from its own queries; everything else is written once, over this.
//
// Times are Unix milliseconds. now is the Manager's clock reading; when it is
// not Valid, the engine reads the database server's clock instead, and the
// methods that return a nowMs report the reading they used.
type engine interface {
	// acquire grants or refreshes entity for session until now + ttlMs. It
	// returns sql.ErrNoRows when another session holds a live lease.
	acquire(ctx context.Context, entity, session string, now sql.NullInt64, ttlMs int64) (l Lease, nowMs int64, err error)
	// acquireAll does what acquire does for every one of the sorted,
	// distinct entities, or for none: it returns no lease when any is held.
	acquireAll(ctx context.Context, entities []string, session string, now sql.NullInt64, ttlMs int64) (ls []Lease, nowMs int64, err error)
	// holder returns the live lease on entity, or sql.ErrNoRows.
	holder(ctx context.Context, entity string, now sql.NullInt64) (l Lease, nowMs int64, err error)
	// firstHeld returns the live lease of another session than session on
	// the first of entities, or sql.ErrNoRows.
	firstHeld(ctx context.Context, entities []string, session string, now sql.NullInt64) (l Lease, nowMs int64, err error)
	// extend pushes back the expiry of session's live lease by byMs, or
	// returns sql.ErrNoRows.
	extend(ctx context.Context, entity, session string, byMs int64, now sql.NullInt64) (Lease, error)
	// renew sets the expiry of exactly this live grant to now + ttlMs, never
	// earlier than it was, or returns sql.ErrNoRows.
	renew(ctx context.Context, l Lease, now sql.NullInt64, ttlMs int64) (renewed Lease, nowMs int64, err error)
	// release, releaseGrant and forceRelease release one lease, live or
	// expired, and report how many rows they changed (0 or 1).
	release(ctx context.Context, entity, session string) (int64, error)
	releaseGrant(ctx context.Context, l Lease) (int64, error)
	forceRelease(ctx context.Context, entity string) (int64, error)
	// releaseSession releases every lease of session and names the entities.
	releaseSession(ctx context.Context, session string) ([]string, error)
	// purgeCandidates returns up to max released or expired rows whose
	// entity sorts after after, in the order the next call continues from.
	purgeCandidates(ctx context.Context, after string, max int, now sql.NullInt64) ([]string, error)
	// purgeBatch deletes those of entities that are still released or
	// expired, in one short transaction, and says how many it deleted.
	purgeBatch(ctx context.Context, entities []string, now sql.NullInt64) (int64, error)
	// reclaimSpace gives free pages of the database file back to the file
	// system, in short steps, when many are free; a no-op where the
	// database server does that itself.
	reclaimSpace(ctx context.Context) error
	// rowCounts counts the rows by state.
	rowCounts(ctx context.Context, now sql.NullInt64) (RowCounts, error)
	liveLeases(ctx context.Context, now sql.NullInt64) ([]Lease, error)
	sessionLeases(ctx context.Context, session string, now sql.NullInt64) ([]Lease, error)
	allLeases(ctx context.Context) ([]Lease, error)
	// guard checks, inside tx, that l is still the live lease, and keeps it
	// so until tx ends.
	guard(ctx context.Context, tx *sql.Tx, l Lease, now sql.NullInt64) (bool, error)
	// explain translates a driver's error into this package's terms where
	// it has one (ErrDiskFull), keeping the original wrapped.
	explain(err error) error
	// serverClock reports whether a Manager without WithClock should let
	// the database time leases (pass now unset).
	serverClock() bool
	close() error
}
