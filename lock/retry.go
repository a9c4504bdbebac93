package lock

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how Acquire waits while another session holds the entity.
//
// After the n-th failed attempt (n from 0) Acquire waits
// BaseDelay·2ⁿ, capped at MaxDelay, then spread uniformly by ±Jitter (a
// fraction: 0.2 means ±20%), and never less than MinInterval: a zero or tiny
// BaseDelay is raised to it, so no policy polls in a busy loop. It never
// waits past the holder's expiry when that comes sooner, and stops at once
// when its ctx ends.
//
// Waiters of one Manager line up per entity, first come first served; only
// the first in line polls the database. A release through the same Manager
// wakes the first waiter at once. Each backoff step that runs out counts as
// one retry, for every waiter in the line, whatever its place; a wake-up does
// not count, so a waiter does not use up its retries by losing, after a
// wake-up, to another process.
type RetryPolicy struct {
	// MaxRetries is how many attempts follow the first. Zero means one
	// attempt only; a negative value retries until ctx ends.
	MaxRetries int
	// BaseDelay is the wait after the first failed attempt.
	BaseDelay time.Duration
	// MaxDelay caps each wait. Zero means no cap.
	MaxDelay time.Duration
	// Jitter spreads each wait by up to this fraction either way, in [0, 1].
	Jitter float64
}

func (p RetryPolicy) validate() error {
	switch {
	case p.BaseDelay < 0:
		return fmt.Errorf("%w: retry BaseDelay %v is negative", ErrInvalidDuration, p.BaseDelay)
	case p.MaxDelay < 0:
		return fmt.Errorf("%w: retry MaxDelay %v is negative", ErrInvalidDuration, p.MaxDelay)
	case !(p.Jitter >= 0 && p.Jitter <= 1): // also rejects NaN
		return fmt.Errorf("%w: retry Jitter %v is outside [0, 1]", ErrInvalidOption, p.Jitter)
	}
	return nil
}

// delay is the wait after failed attempt n (from 0).
func (p RetryPolicy) delay(n int) time.Duration {
	const noDoubling = time.Duration(1 << 62) // doubling past this overflows
	d := p.BaseDelay
	for i := 0; i < n && d > 0 && d < noDoubling && (p.MaxDelay == 0 || d < p.MaxDelay); i++ {
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	if p.Jitter > 0 && d > 0 {
		spread := (rand.Float64()*2 - 1) * p.Jitter // in [-Jitter, +Jitter)
		d += time.Duration(float64(d) * spread)
	}
	return max(d, MinInterval)
}

// exhausted reports whether no retry may follow failed attempt n (from 0).
func (p RetryPolicy) exhausted(n int) bool {
	return p.MaxRetries >= 0 && n >= p.MaxRetries
}
