package locktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

func testAcquireAll(t *testing.T, h *harness) {
	clk := newTestClock()
	m := h.open(t, lock.WithClock(clk.Now), lock.WithTTL(time.Minute), lock.WithRetry(fastRetry))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	ctx := t.Context()

	mine := mustAcquire(t, a, "e::2") // refreshed, not re-granted
	clk.Advance(time.Second)
	got, err := a.AcquireAll(ctx, "e::3", "e::1", "e::2", "e::1")
	if err != nil {
		t.Fatalf("AcquireAll: %v", err)
	}
	exp := clk.Now().Add(time.Minute)
	// New grants get new tokens (how large depends on the engine); the
	// refreshed lease keeps its own.
	want := []lock.Lease{
		{Entity: "e::1", SessionID: "a", AcquiredAt: clk.Now(), ExpiresAt: exp},
		{Entity: "e::2", SessionID: "a", Token: mine.Token, AcquiredAt: mine.AcquiredAt, ExpiresAt: exp},
		{Entity: "e::3", SessionID: "a", AcquiredAt: clk.Now(), ExpiresAt: exp},
	}
	if len(got) == len(want) {
		for _, i := range []int{0, 2} {
			if got[i].Token <= 0 {
				t.Errorf("%s: token %d, want > 0", got[i].Entity, got[i].Token)
			}
			want[i].Token = got[i].Token
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AcquireAll (-want +got):\n%s", diff)
	}

	// b wants e::0 (free), e::2 (a's) and e::9 (free): nothing may stick.
	_, err = b.AcquireAll(ctx, "e::9", "e::0", "e::2")
	var he *lock.HeldError
	if !errors.As(err, &he) || he.Holder.Entity != "e::2" || he.Holder.SessionID != "a" {
		t.Fatalf("got err %v; want a *HeldError for e::2 held by a", err)
	}
	bs, err := b.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lock.Lease{}, bs); diff != "" {
		t.Errorf("b's leases after a refused AcquireAll (-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{nil, {"ok", ""}} {
		if _, err := b.AcquireAll(ctx, bad...); !errors.Is(err, lock.ErrInvalidEntity) {
			t.Errorf("AcquireAll(%q): got err %v, want ErrInvalidEntity", bad, err)
		}
	}
}

func testAcquireAllWaitsForBlockingEntity(t *testing.T, h *harness) {
	m := h.open(t, lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}))
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")
	mustAcquire(t, a, "e::2")
	done := make(chan error, 1)
	go func() {
		_, err := b.AcquireAll(context.Background(), "e::1", "e::2")
		done <- err
	}()
	waitFor(t, "b to be refused", func() bool { return m.Stats().Contended >= 1 })
	mustRelease(t, a, "e::2") // wakes b despite the one-hour backoff
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AcquireAll: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AcquireAll not woken by the release")
	}
}

// Sessions take random overlapping sets of a few entities with AcquireAll,
// from two Managers, in random order: every call either gets its whole set
// or fails with ErrHeld, no entity ever has two holders, and nobody
// deadlocks or sees a database error.
func testAcquireAllOverlappingSets(t *testing.T, h *harness) {
	dsn := h.dsn(t)
	retry := lock.RetryPolicy{MaxRetries: 50, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Jitter: 0.5}
	managers := []*lock.Manager{
		h.openDSN(t, dsn, lock.WithRetry(retry)),
		h.openDSN(t, dsn, lock.WithRetry(retry)),
	}
	const workers, rounds, pool = 8, 25, 5
	var (
		holders [pool]atomic.Int32
		granted atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range workers {
		s := mustSession(t, managers[w%2], fmt.Sprintf("worker-%d", w))
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				var set []string
				var idx []int
				for _, i := range rng.Perm(pool)[:2+rng.IntN(2)] {
					set = append(set, fmt.Sprintf("e::%d", i))
					idx = append(idx, i)
				}
				leases, err := s.AcquireAll(context.Background(), set...)
				if errors.Is(err, lock.ErrHeld) {
					continue
				}
				if err != nil {
					t.Errorf("%s: AcquireAll(%v): %v", s.ID(), set, err)
					return
				}
				if len(leases) != len(set) {
					t.Errorf("%s: got %d leases for %d entities", s.ID(), len(leases), len(set))
				}
				for _, i := range idx {
					if n := holders[i].Add(1); n != 1 {
						t.Errorf("e::%d has %d holders", i, n)
					}
				}
				granted.Add(1)
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
				for _, i := range idx {
					holders[i].Add(-1)
				}
				if _, err := s.ReleaseAll(context.Background()); err != nil {
					t.Errorf("%s: ReleaseAll: %v", s.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if granted.Load() == 0 {
		t.Fatal("no AcquireAll call was granted")
	}
	t.Logf("%d of %d AcquireAll calls granted", granted.Load(), workers*rounds)
}
