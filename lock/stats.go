package lock

import (
	"slices"
	"sync/atomic"
	"time"
)

// Stats counts what a Manager, or a Session, did since it was made.
// Counters cover calls made through it only, not other processes'.
type Stats struct {
	Grants     int64 // new grants (each with a new fencing token)
	Refreshes  int64 // acquisitions of a lease the session already held
	Contended  int64 // attempts that found another session's live lease
	Takeovers  int64 // grants that reclaimed an expired lease
	Releases   int64 // leases removed by Release, ReleaseAll or ForceRelease
	Extends    int64 // successful Extend calls
	Renewals   int64 // successful background renewals in Do
	LostLeases int64 // leases Do found lost while its function ran
	Purged     int64 // expired and released rows deleted by PurgeExpired and the sweeper
	Waits      WaitStats
}

// WaitStats describes the time Acquire and AcquireAll spent waiting for
// entities held by others, from the first refused attempt to the grant or
// to giving up.
type WaitStats struct {
	Count int64
	Total time.Duration
	// Buckets[i] counts waits no longer than WaitBuckets()[i]; the last
	// element counts the longer ones.
	Buckets []int64
}

// WaitBuckets returns the upper bounds of WaitStats.Buckets, a copy the
// caller may keep.
func WaitBuckets() []time.Duration { return slices.Clone(waitBounds[:]) }

var waitBounds = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute,
}

// Quantile returns the upper bound of the bucket holding the q-th quantile
// of the waits (0 < q ≤ 1), or 0 without waits. Waits beyond the last
// bound report -1: longer than a minute.
func (w WaitStats) Quantile(q float64) time.Duration {
	if w.Count == 0 {
		return 0
	}
	rank := int64(q*float64(w.Count) + 0.5)
	rank = max(rank, 1)
	var seen int64
	for i, n := range w.Buckets {
		seen += n
		if seen >= rank {
			if i < len(waitBounds) {
				return waitBounds[i]
			}
			break
		}
	}
	return -1
}

// counters are the live, lock-free form of Stats.
type counters struct {
	grants, refreshes, contended, takeovers, releases,
	extends, renewals, lost, purged atomic.Int64
	waitCount, waitNanos atomic.Int64
	waitBuckets          [len(waitBounds) + 1]atomic.Int64
}

func (c *counters) wait(d time.Duration) {
	c.waitCount.Add(1)
	c.waitNanos.Add(int64(d))
	i := 0
	for i < len(waitBounds) && d > waitBounds[i] {
		i++
	}
	c.waitBuckets[i].Add(1)
}

// Stats returns a snapshot of the Manager's counters: every call made
// through it and its sessions. It works after Close.
func (m *Manager) Stats() Stats { return m.stats.snapshot() }

// Stats returns a snapshot of the counters of the calls made through this
// Session handle (not through other handles with the same id).
func (s *Session) Stats() Stats { return s.stats.snapshot() }

func (c *counters) snapshot() Stats {
	s := Stats{
		Grants:     c.grants.Load(),
		Refreshes:  c.refreshes.Load(),
		Contended:  c.contended.Load(),
		Takeovers:  c.takeovers.Load(),
		Releases:   c.releases.Load(),
		Extends:    c.extends.Load(),
		Renewals:   c.renewals.Load(),
		LostLeases: c.lost.Load(),
		Purged:     c.purged.Load(),
		Waits: WaitStats{
			Count:   c.waitCount.Load(),
			Total:   time.Duration(c.waitNanos.Load()),
			Buckets: make([]int64, len(c.waitBuckets)),
		},
	}
	for i := range c.waitBuckets {
		s.Waits.Buckets[i] = c.waitBuckets[i].Load()
	}
	return s
}
