package lock

import "time"

// WithLocalClock sets the Manager's local clock without making it the clock
// that leases are timed by (as WithClock does): the clock of a machine
// whose time is off, for tests of an engine timed by its server.
func WithLocalClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}
