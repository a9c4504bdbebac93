package lock

import (
	"context"
	"database/sql"
	"errors"
	"math"
)

// engine is what the locking policy of this package (retries, waiting,
// renewal, fencing checks, statistics) needs from a database. Each engine
// wraps the code that sqlc generated from its own queries; everything else
// is written once, over this.
//
// Each method is one operation, and each that writes runs one atomic
// statement: it takes effect entirely or not at all. An adapter may run that
// statement again when the database rolled it back or the connection failed
// under it, provided a repetition leaves the same state (retry_postgres.go),
// and may read after it, to tell the caller what happened (PostgreSQL's
// releaseGrant, when its connection died).
//
// The parameters come in one order: ctx, then what names the lease or
// leases (entity or entities, then session; or a Lease, which names one
// grant), then times: now, then a duration in milliseconds.
//
// Besides the database's own failures, a method reports what it found as
// one of the errors below; errors.go turns them into the exported errors.
// No method returns sql.ErrNoRows, an empty result or a false for them.
//
// An engine that can tell a Manager of releases made by other processes
// implements changeFeed too (changes.go).
type engine interface {
	// acquire grants entity to session until now + ttlMs, or refreshes
	// session's live lease on it: its expiry pushed to now + ttlMs, never
	// brought forward. It fails with errHeldByOther when another session
	// holds a live lease on entity. nowMs may be unknownNow for a refresh.
	acquire(ctx context.Context, entity, session string, now clockReading, ttlMs int64) (l Lease, nowMs int64, err error)
	// acquireAll does what acquire does for every one of the sorted,
	// distinct entities, or for none: it fails with errHeldByOther when any
	// is held by another session, and with errConflict when the database
	// rolled it back for a concurrent statement. It returns a lease for
	// every entity, in any order.
	acquireAll(ctx context.Context, entities []string, session string, now clockReading, ttlMs int64) (ls []Lease, nowMs int64, err error)
	// holder returns the live lease on entity, or errNoLease.
	holder(ctx context.Context, entity string, now clockReading) (l Lease, nowMs int64, err error)
	// firstHeld returns the live lease of another session than session on
	// the first of entities by name, or errNoLease.
	firstHeld(ctx context.Context, entities []string, session string, now clockReading) (l Lease, nowMs int64, err error)
	// extend pushes back the expiry of session's live lease on entity by
	// byMs, or fails with errNoLease.
	extend(ctx context.Context, entity, session string, now clockReading, byMs int64) (Lease, error)
	// renew sets the expiry of exactly the live grant l to now + ttlMs,
	// never earlier than it was, or fails with errNoLease.
	renew(ctx context.Context, l Lease, now clockReading, ttlMs int64) (renewed Lease, nowMs int64, err error)
	// release, releaseGrant and forceRelease release one lease, live or
	// expired: session's on entity, exactly the grant l, or whoever's on
	// entity. They report whether there was one.
	release(ctx context.Context, entity, session string) (bool, error)
	releaseGrant(ctx context.Context, l Lease) (bool, error)
	forceRelease(ctx context.Context, entity string) (bool, error)
	// releaseSession releases every lease of session and names the entities.
	releaseSession(ctx context.Context, session string) ([]string, error)
	// purgeCandidates returns up to max released or expired rows whose
	// entity sorts after after, in the order the next call continues from.
	purgeCandidates(ctx context.Context, after string, max int, now clockReading) ([]string, error)
	// purgeBatch deletes those of entities that are still released or
	// expired, in one statement, and says how many it deleted.
	purgeBatch(ctx context.Context, entities []string, now clockReading) (int64, error)
	// reclaimSpace gives free pages of the database file back to the file
	// system, in short steps, when many are free; a no-op where the
	// database server does that itself.
	reclaimSpace(ctx context.Context) error
	// rowCounts counts the rows by state.
	rowCounts(ctx context.Context, now clockReading) (RowCounts, error)
	// liveLeases, sessionLeases and allLeases list leases by entity: every
	// live one, session's live ones, and every row not released (live or
	// expired).
	liveLeases(ctx context.Context, now clockReading) ([]Lease, error)
	sessionLeases(ctx context.Context, session string, now clockReading) ([]Lease, error)
	allLeases(ctx context.Context) ([]Lease, error)
	// guard checks, inside tx, that l is still the live lease, and keeps it
	// so until tx ends; it fails with errNoLease when it is not.
	guard(ctx context.Context, tx *sql.Tx, l Lease, now clockReading) error
	// explain translates a driver's error into this package's terms where
	// it has one (ErrDiskFull), keeping the original wrapped.
	explain(err error) error
	close() error
}

// What an engine found, when it is not what the caller asked for. Nothing
// was written when a method returns one of them.
var (
	// errHeldByOther: another session holds a live lease on the entity (or
	// on one of the entities). The statements do not return that lease:
	// holder and firstHeld read it.
	errHeldByOther = errors.New("held by another session")
	// errNoLease: no live lease matched (entity's, session's own, or the
	// exact grant).
	errNoLease = errors.New("no live lease")
	// errConflict: the database rolled the statement back because of a
	// concurrent one (a deadlock, a serialization failure); trying again
	// may succeed.
	errConflict = errors.New("conflict with a concurrent statement")
)

// maxAttempts bounds every "try again" of this package that no RetryPolicy
// governs: an engine's repetitions of a statement that failed for a reason
// other than its outcome (retry_postgres.go), and a grant whose holder
// changed between the grant's statement and the read that names it
// (session.go, acquire_all.go).
const maxAttempts = 8

// A clockReading is the "now" a statement measures leases by, in Unix
// milliseconds: a reading of the Manager's clock, or, for the zero value
// (serverClock), the database server's own clock, which the statement reads
// itself. Methods that return nowMs report the reading they used. Only an
// engine whose statements can read the server's clock is ever given
// serverClock (Manager.stmtNow, clock.go); SQLite's never are.
type clockReading struct {
	ms  int64
	set bool
}

// serverClock asks a statement to read the server's clock.
var serverClock = clockReading{}

// unknownNow is the nowMs of a statement that read the server's clock but
// cannot tell what it read: on PostgreSQL, a refresh (its expiry may be
// one it kept, not now + TTL). observe ignores it, and granted counts a
// refresh.
const unknownNow = math.MinInt64

// readingAt is the reading ms of the Manager's clock.
func readingAt(ms int64) clockReading { return clockReading{ms: ms, set: true} }
