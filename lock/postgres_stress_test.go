package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// stress runs each worker in a loop for d and collects the errors they
// return that are not contention.
func stress(t *testing.T, d time.Duration, workers ...func(ctx context.Context, r *rand.Rand) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for i, w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for ctx.Err() == nil {
				err := w(ctx, r)
				if err == nil || errors.Is(err, lock.ErrHeld) || ctx.Err() != nil {
					continue
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// Purges racing each other, AcquireAll over overlapping sets, grants and
// releases: no call fails, with a deadlock (40P01) or anything else.
func TestPostgresPurgesNeverDeadlock(t *testing.T) {
	b := locktest.Postgres(t)
	m := mustOpenPath(t, b.NewDSN(t), lock.WithSweepInterval(0), lock.WithTTL(50*time.Millisecond),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: 1, BaseDelay: time.Millisecond}))
	entity := func(r *rand.Rand) string { return fmt.Sprintf("entity::%02d", r.IntN(40)) }
	var workers []func(ctx context.Context, r *rand.Rand) error
	for i := range 4 {
		s := mustSession(t, m, fmt.Sprintf("all-%d", i))
		workers = append(workers, func(ctx context.Context, r *rand.Rand) error {
			if _, err := s.AcquireAll(ctx, entity(r), entity(r), entity(r), entity(r)); err != nil {
				return err
			}
			_, err := s.ReleaseAll(ctx)
			return err
		})
	}
	for i := range 3 {
		s := mustSession(t, m, fmt.Sprintf("one-%d", i))
		workers = append(workers, func(ctx context.Context, r *rand.Rand) error {
			e := entity(r)
			if _, err := s.TryAcquire(ctx, e); err != nil {
				return err
			}
			if r.IntN(2) == 0 { // or leave it to expire
				_, err := s.Release(ctx, e)
				return err
			}
			return nil
		})
	}
	for range 3 {
		workers = append(workers, func(ctx context.Context, _ *rand.Rand) error {
			_, err := m.PurgeExpired(ctx)
			return err
		})
	}
	for _, err := range stress(t, 3*time.Second, workers...) {
		t.Errorf("call failed: %v", err)
	}
}

// Backends terminated every 50–200 ms under a Manager's feet: every call
// that is safe to repeat succeeds anyway, on another connection.
func TestPostgresSurvivesTerminatedBackends(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	app := "entitylock-kill-" + strings.ToLower(t.Name()[len(t.Name())-8:])
	m := mustOpenPath(t, testkit.WithParam(t, dsn, "application_name", app), lock.WithSweepInterval(0),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: 3, BaseDelay: time.Millisecond}))
	raw := testkit.DB(t, dsn)
	var killed atomic.Int64
	killer := func(ctx context.Context, r *rand.Rand) error {
		var n int64
		err := raw.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
		killed.Add(n)
		if err == nil {
			err = pauseFor(ctx, time.Duration(50+r.IntN(150))*time.Millisecond)
		}
		return err
	}
	workers := []func(ctx context.Context, r *rand.Rand) error{killer}
	var calls atomic.Int64
	for i := range 6 {
		s := mustSession(t, m, fmt.Sprintf("s%d", i))
		workers = append(workers, func(ctx context.Context, r *rand.Rand) error {
			calls.Add(1)
			e := fmt.Sprintf("entity::%d::%d", i, r.IntN(5))
			if _, err := s.Acquire(ctx, e); err != nil {
				return err
			}
			if _, err := m.Holder(ctx, e); err != nil {
				return err
			}
			_, err := s.Release(ctx, e)
			return err
		})
	}
	for _, err := range stress(t, 3*time.Second, workers...) {
		t.Errorf("call failed: %v", err)
	}
	t.Logf("%d rounds of calls, %d backends terminated", calls.Load(), killed.Load())
	if killed.Load() == 0 {
		t.Error("no backend was terminated: the test tested nothing")
	}
}

func pauseFor(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(d):
		return nil
	}
}
