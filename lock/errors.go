package lock

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrHeld means another session holds a live lease on the entity. The
	// error is a *HeldError that says who and until when.
	ErrHeld = errors.New("entity is held by another session")
	// ErrNotHeld means the session has no live lease on the entity: it never
	// had one, released it, or the lease expired or was taken over.
	ErrNotHeld = errors.New("no live lease")
	// ErrInvalidEntity means an entity name is empty, longer than
	// MaxEntityLen bytes, not valid UTF-8, or contains NUL.
	ErrInvalidEntity = errors.New("invalid entity name")
	// ErrInvalidSession means a session id is empty, longer than
	// MaxSessionLen bytes, not valid UTF-8, or contains NUL.
	ErrInvalidSession = errors.New("invalid session id")
	// ErrInvalidDuration means a TTL, an Extend duration or a retry delay
	// is out of range.
	ErrInvalidDuration = errors.New("invalid duration")
	// ErrInvalidOption means an option to Open or New cannot work, such as
	// a nil clock or a nil *sql.DB.
	ErrInvalidOption = errors.New("invalid option")
	// ErrClosed means the Manager was closed.
	ErrClosed = errors.New("lock manager is closed")
)

// ErrLeaseLost means a lease ended while its holder was still working under
// it: a renewal found it taken (by expiry takeover or ForceRelease), or no
// renewal got through before the holder's local deadline. The error is a
// *LeaseLostError naming the lease.
var ErrLeaseLost = errors.New("lease lost")

// ErrNotReleased means Do's function returned nil, so its work stands, but
// the release of its lease then failed: the lease stays in the database
// until it expires, at most the TTL later, unless a retry of the release
// by the same session removes it first. The error wraps the release's cause.
var ErrNotReleased = errors.New("work done, lease not released")

// LeaseLostError reports the lease Do lost and why. errors.Is(err,
// ErrLeaseLost) holds for it; Unwrap gives the cause: ErrNotHeld when a
// renewal found the lease gone, or a deadline error when renewals did not
// get through in time.
type LeaseLostError struct {
	Lease Lease
	Cause error
}

// Error names the entity and token of the lost lease.
func (e *LeaseLostError) Error() string {
	return fmt.Sprintf("%s: %q token %d: %v", ErrLeaseLost, e.Lease.Entity, e.Lease.Token, e.Cause)
}

// Is makes errors.Is(err, ErrLeaseLost) true.
func (e *LeaseLostError) Is(target error) bool { return target == ErrLeaseLost }

// Unwrap returns the cause.
func (e *LeaseLostError) Unwrap() error { return e.Cause }

// HeldError reports the live lease that stopped a grant. errors.Is(err,
// ErrHeld) holds for it, and errors.As recovers it from a wrapped error.
type HeldError struct {
	// Holder is the lease that blocked the grant; Holder.Entity names the
	// entity, which matters when several were asked for at once.
	Holder Lease
}

// Error says who holds the entity, and until when.
func (e *HeldError) Error() string {
	return fmt.Sprintf("%s: session %q (token %d) until %s",
		ErrHeld, e.Holder.SessionID, e.Holder.Token,
		e.Holder.ExpiresAt.UTC().Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// opError wraps err with the operation and entity that failed:
// `lock: acquire "entity::Foo": …`. It is the one place that turns what an
// engine found (engine.go) into an exported error: errNoLease becomes
// ErrNotHeld. errHeldByOther and errConflict, which the policy resolves
// first (it reads the holder, to return a *HeldError, or tries again),
// become ErrHeld should one get this far.
func opError(op, entity string, err error) error {
	switch {
	case errors.Is(err, errNoLease):
		err = ErrNotHeld
	case errors.Is(err, errHeldByOther), errors.Is(err, errConflict):
		err = ErrHeld
	}
	if entity == "" {
		return fmt.Errorf("lock: %s: %w", op, err)
	}
	const max = 64 // an oversized name is the error, not its message
	if len(entity) > max {
		return fmt.Errorf("lock: %s %q…: %w", op, entity[:max], err)
	}
	return fmt.Errorf("lock: %s %q: %w", op, entity, err)
}
