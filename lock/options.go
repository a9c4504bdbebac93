package lock

import (
	"fmt"
	"log/slog"
	"time"
)

// DefaultTTL is how long a grant lasts unless WithTTL says otherwise. A
// holder that crashes keeps others from the entity for at most this long;
// one that works longer renews its lease (Do does, every TTL/3) or extends
// it.
const DefaultTTL = 120 * time.Second

// DefaultRetry is the policy Acquire follows unless WithRetry says otherwise:
// three retries after 50 ms, 100 ms and 200 ms, each spread by ±20%.
var DefaultRetry = RetryPolicy{MaxRetries: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 2 * time.Second, Jitter: 0.2}

// DefaultBusyTimeout is how long Open lets a statement wait for another
// connection's write lock before SQLite gives up, unless the DSN sets
// busy_timeout itself.
const DefaultBusyTimeout = 10 * time.Second

// MinInterval is the shortest interval the Manager polls or writes at: each
// retry wait is raised to it, and renewal and sweep intervals under it are
// refused. It is also the resolution leases are stored at.
const MinInterval = time.Millisecond

// DefaultSweepInterval is how often a Manager purges expired and released
// rows in the background unless WithSweepInterval says otherwise. Each of a
// database's Managers sweeps; a sweep finding nothing costs one read.
const DefaultSweepInterval = time.Minute

// An Option configures a Manager; pass options to Open or New. When an
// option is given twice, the last one wins.
type Option func(*config)

type config struct {
	ttl       time.Duration
	retry     RetryPolicy
	now       func() time.Time
	clockSet  bool // WithClock given: PostgreSQL then uses it, not the server's clock
	logger    *slog.Logger
	sweep     time.Duration // 0: no sweeper
	renew     time.Duration // 0: TTL/3
	margin    time.Duration
	marginSet bool // false: TTL/10
}

func defaultConfig() config {
	return config{
		ttl:    DefaultTTL,
		retry:  DefaultRetry,
		sweep:  DefaultSweepInterval,
		now:    time.Now,
		logger: slog.New(slog.DiscardHandler),
	}
}

// renewEvery is how often Do renews a lease.
func (c *config) renewEvery() time.Duration {
	if c.renew > 0 {
		return c.renew
	}
	return max(c.ttl/3, MinInterval)
}

// safetyMargin is how long before its expiry Do gives a lease up as lost
// when it could not renew it.
func (c *config) safetyMargin() time.Duration {
	if c.marginSet {
		return c.margin
	}
	return c.ttl / 10
}

// validate reports the first setting that cannot work, wrapping
// ErrInvalidDuration or ErrInvalidOption.
func (c *config) validate() error {
	if err := validateDuration("TTL", c.ttl); err != nil {
		return err
	}
	if c.now == nil {
		return fmt.Errorf("%w: nil clock", ErrInvalidOption)
	}
	if c.logger == nil {
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	}
	if c.sweep < 0 || (c.sweep > 0 && c.sweep < MinInterval) {
		return fmt.Errorf("%w: sweep interval %v: want 0 (off) or at least %v", ErrInvalidDuration, c.sweep, MinInterval)
	}
	if c.renew < 0 || (c.renew > 0 && c.renew < MinInterval) {
		return fmt.Errorf("%w: renewal interval %v: want at least %v", ErrInvalidDuration, c.renew, MinInterval)
	}
	if c.renew > 0 && c.renew >= c.ttl {
		return fmt.Errorf("%w: renewal interval %v must be under the TTL %v", ErrInvalidDuration, c.renew, c.ttl)
	}
	if c.safetyMargin() < 0 {
		return fmt.Errorf("%w: safety margin %v is negative", ErrInvalidDuration, c.safetyMargin())
	}
	if (c.renew > 0 || c.marginSet) && !c.canRenew() {
		return fmt.Errorf("%w: renewal interval %v plus safety margin %v plus %v must be under the TTL %v",
			ErrInvalidDuration, c.renewEvery(), c.safetyMargin(), MinInterval, c.ttl)
	}
	return c.retry.validate()
}

// canRenew reports whether Do can keep a lease: a renewal and the safety
// margin fit in the TTL. With the defaults only a TTL of a few
// milliseconds fails it; Do then refuses to start.
func (c *config) canRenew() bool {
	// The local deadline comes a millisecond before TTL − margin (keepers.go).
	return c.renewEvery()+c.safetyMargin()+MinInterval < c.ttl
}

// WithTTL sets how long each grant and refresh lasts (default DefaultTTL).
// It must be at least one millisecond, the resolution leases are stored at.
func WithTTL(ttl time.Duration) Option {
	return func(c *config) { c.ttl = ttl }
}

// WithRetry sets the policy Acquire follows while another session holds the
// entity (default DefaultRetry).
func WithRetry(p RetryPolicy) Option {
	return func(c *config) { c.retry = p }
}

// WithClock replaces the source of "now" for every lease decision. Tests
// use it to move time without sleeping. The clock's readings are truncated
// to milliseconds. Every process sharing a database must use clocks that
// agree. Without it, SQLite leases are timed by time.Now (one machine, one
// clock) and PostgreSQL leases by the server's clock_timestamp(), so that
// clients on machines whose clocks disagree still agree on expiry.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now, c.clockSet = now, true }
}

// WithLogger sets where the Manager logs contention, takeovers of expired
// leases and lost leases, at debug and info level. Nothing is logged by
// default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithSweepInterval sets how often the Manager purges expired and released
// rows in the background, as PurgeExpired does, until it closes (default
// DefaultSweepInterval); 0 turns the sweeper off, any other d must be at
// least MinInterval. Without purges, every entity ever locked keeps a row.
// Fencing tokens stay monotonic across purges.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) { c.sweep = d }
}

// WithRenewInterval sets how often Do renews its lease while its function
// runs (default TTL/3, at least MinInterval). It must be at least
// MinInterval, and together with the safety margin stay under the TTL.
func WithRenewInterval(d time.Duration) Option {
	return func(c *config) { c.renew = d }
}

// WithSafetyMargin sets how long before a lease's expiry, counted from the
// start of the last successful renewal, Do cancels its function's context
// when renewals have not got through (default TTL/10). It absorbs the
// difference between clocks and the time a cancelled function needs to
// stop writing.
func WithSafetyMargin(d time.Duration) Option {
	return func(c *config) { c.margin, c.marginSet = d, true }
}
