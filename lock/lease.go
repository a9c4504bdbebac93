package lock

import "time"

// A Lease is one grant of an entity to a session, as the database recorded
// it when the call returned.
type Lease struct {
	// Entity is the locked name.
	Entity string
	// SessionID is the holder.
	SessionID string
	// Token is the fencing token: every new grant of Entity gets a token
	// greater than any that Entity had before; refreshing or extending the
	// lease keeps it. Only the order per entity is promised. Pass it
	// to the resource the lock protects, which can then refuse writes
	// carrying an older token.
	Token int64
	// AcquiredAt is when this grant began; refreshes leave it unchanged.
	AcquiredAt time.Time
	// ExpiresAt is when the lease lapses: it is live while now < ExpiresAt.
	ExpiresAt time.Time
	// Reclaimed reports that this grant began by taking over an expired
	// lease: its holder crashed or stalled, and may have left the entity's
	// data half-updated.
	Reclaimed bool
}

// Live reports whether the lease is still live at now.
func (l Lease) Live(now time.Time) bool { return now.Before(l.ExpiresAt) }
