package locktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// 64 sessions race for one entity on a file database with a pool of many
// connections: exactly one wins, every other gets ErrHeld naming the winner,
// and nothing else (no SQLITE_BUSY) reaches a caller.
func testExactlyOneWinner(t *testing.T, h *harness) {
	const n = 64
	m := h.open(t)
	// 64 racers share 16 connections: as many as the race needs, without
	// taking 64 of a PostgreSQL server's connections at once.
	m.DB().SetMaxOpenConns(16)
	start := make(chan struct{})
	var (
		wg      sync.WaitGroup
		winners atomic.Int32
		results = make([]error, n)
		won     = make([]lock.Lease, n)
	)
	for i := range n {
		s := mustSession(t, m, fmt.Sprintf("session-%02d", i))
		wg.Go(func() {
			<-start
			won[i], results[i] = s.TryAcquire(context.Background(), "entity::hot")
			if results[i] == nil {
				winners.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()

	if got := winners.Load(); got != 1 {
		t.Fatalf("%d winners, want exactly 1", got)
	}
	holder, err := m.Holder(t.Context(), "entity::hot")
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range results {
		if err == nil {
			if won[i] != holder {
				t.Errorf("winner's lease %+v differs from Holder %+v", won[i], holder)
			}
			continue
		}
		var he *lock.HeldError
		if !errors.As(err, &he) {
			t.Errorf("session-%02d: got err %v, want a *HeldError", i, err)
		} else if he.Holder != holder {
			t.Errorf("session-%02d: HeldError names %+v, want %+v", i, he.Holder, holder)
		}
	}
}

// Several sessions on a multi-connection pool take turns on a few entities
// with Acquire; a counter incremented without any other protection inside
// each grant shows whether two critical sections ever overlapped.
func testContentionOnSharedPool(t *testing.T, h *harness) {
	const (
		sessions = 8
		entities = 3
		rounds   = 15
	)
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond, Jitter: 0.5}))
	var (
		inside  [entities]atomic.Int32
		counter [entities]int // protected by the lock under test only
		grants  atomic.Int64
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i := range sessions {
		s := mustSession(t, m, fmt.Sprintf("agent-%d", i))
		wg.Go(func() {
			for r := range rounds {
				e := (i + r) % entities
				name := fmt.Sprintf("entity::%d", e)
				if _, err := s.Acquire(ctx, name); err != nil {
					t.Errorf("%s: Acquire(%s): %v", s.ID(), name, err)
					return
				}
				if in := inside[e].Add(1); in != 1 {
					t.Errorf("%d holders inside %s at once", in, name)
				}
				v := counter[e]
				time.Sleep(50 * time.Microsecond) // widen the window for a lost update
				counter[e] = v + 1
				inside[e].Add(-1)
				grants.Add(1)
				if ok, err := s.Release(ctx, name); err != nil || !ok {
					t.Errorf("%s: Release(%s) = %v, %v", s.ID(), name, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counter {
		total += c
	}
	if want := sessions * rounds; total != want || grants.Load() != int64(want) {
		t.Errorf("counters sum to %d with %d grants, want %d (lost updates)", total, grants.Load(), want)
	}
}
