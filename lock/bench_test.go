package lock_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// Uncontended TryAcquire+Release pairs on a WAL file database.
func BenchmarkTryAcquireRelease(b *testing.B) { benchPairs(b, mustOpen(b)) }

// The same on PostgreSQL, in a fresh schema.
func BenchmarkPostgresTryAcquireRelease(b *testing.B) {
	benchPairs(b, mustOpenPath(b, locktest.Postgres(b).NewDSN(b)))
}

func benchPairs(b *testing.B, m *lock.Manager) {
	s := mustSession(b, m, "bench")
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.TryAcquire(ctx, "entity::bench"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Release(ctx, "entity::bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// One TryAcquire (a refresh after the first): bytes and allocations per call.
func BenchmarkTryAcquire(b *testing.B) {
	m := mustOpen(b)
	s := mustSession(b, m, "bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.TryAcquire(ctx, "entity::bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// In-process handoff: the time from the holder's Release returning to the
// waiter's Acquire returning with the grant. Reports p50 and p99.
func BenchmarkHandoff(b *testing.B) {
	m := mustOpen(b, handoffRetry)
	benchHandoff(b, m, m)
}

// Handoff on PostgreSQL between two Managers, as between two processes:
// the waiter learns of the release only through LISTEN/NOTIFY.
func BenchmarkPostgresHandoffAcrossManagers(b *testing.B) {
	dsn := locktest.Postgres(b).NewDSN(b)
	benchHandoff(b, mustOpenPath(b, dsn, handoffRetry), mustOpenPath(b, dsn, handoffRetry))
}

var handoffRetry = lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: 50 * time.Millisecond, Jitter: 0.2})

func benchHandoff(b *testing.B, holderM, waiterM *lock.Manager) {
	holder, waiter := mustSession(b, holderM, "holder"), mustSession(b, waiterM, "waiter")
	m := waiterM
	ctx := context.Background()
	mustAcquire(b, holder, "entity::hot")
	var lat []time.Duration
	for b.Loop() {
		contended := m.Stats().Contended
		got := make(chan time.Time, 1)
		go func() {
			if _, err := waiter.Acquire(ctx, "entity::hot"); err != nil {
				b.Error(err)
			}
			got <- time.Now()
		}()
		for m.Stats().Contended == contended { // the waiter is in line
			time.Sleep(50 * time.Microsecond)
		}
		released := time.Now()
		if _, err := holder.Release(ctx, "entity::hot"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(released))
		if _, err := waiter.Release(ctx, "entity::hot"); err != nil {
			b.Fatal(err)
		}
		mustAcquire(b, holder, "entity::hot")
	}
	reportQuantiles(b, lat)
}

func reportQuantiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op") // the loop includes set-up; the quantiles are the result
}

// AcquireAll of 100 entities in one transaction against 100 Acquire calls.
func BenchmarkAcquire100(b *testing.B) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("entity::%03d", i)
	}
	ctx := context.Background()
	b.Run("AcquireAll", func(b *testing.B) {
		m := mustOpen(b)
		s := mustSession(b, m, "bench")
		for b.Loop() {
			if _, err := s.AcquireAll(ctx, names...); err != nil {
				b.Fatal(err)
			}
			if _, err := s.ReleaseAll(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Sequential", func(b *testing.B) {
		m := mustOpen(b)
		s := mustSession(b, m, "bench")
		for b.Loop() {
			for _, n := range names {
				if _, err := s.Acquire(ctx, n); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.ReleaseAll(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
