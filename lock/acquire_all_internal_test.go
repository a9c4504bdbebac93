package lock

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// conflicting makes acquireAll fail with errConflict, writing nothing, while
// conflicts is above zero, as PostgreSQL's does after a deadlock or a
// serialization failure.
type conflicting struct {
	engine
	conflicts atomic.Int64
	calls     atomic.Int64
}

func (e *conflicting) acquireAll(ctx context.Context, entities []string, session string, now clockReading, ttlMs int64) ([]Lease, int64, error) {
	e.calls.Add(1)
	if e.conflicts.Add(-1) >= 0 {
		return nil, 0, errConflict
	}
	return e.engine.acquireAll(ctx, entities, session, now, ttlMs)
}

// AcquireAll tries a statement rolled back for a concurrent one again, up
// to maxAttempts statements, without counting it as contention or waiting
// for it under the RetryPolicy.
func TestAcquireAllRetriesConflicts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		conflicts int64
		granted   bool
	}{
		{"one conflict", 1, true},
		{"conflicts until the last attempt", maxAttempts - 1, true},
		{"conflicts on every attempt", maxAttempts, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := openFaulty(t, WithRetry(RetryPolicy{MaxRetries: 3}))
			eng := &conflicting{engine: m.eng}
			eng.conflicts.Store(tc.conflicts)
			m.eng = eng
			s, err := m.Session("a")
			if err != nil {
				t.Fatal(err)
			}
			leases, err := s.AcquireAll(t.Context(), "x", "y")
			if got, want := eng.calls.Load(), min(tc.conflicts+1, maxAttempts); got != want {
				t.Errorf("%d acquireAll statements; want %d", got, want)
			}
			var held *HeldError
			if errors.As(err, &held) {
				t.Fatalf("AcquireAll = %v; a conflict is not a refusal by a holder", err)
			}
			if got := s.Stats().Contended; got != 0 {
				t.Errorf("Stats().Contended = %d; want 0", got)
			}
			if !tc.granted {
				if !errors.Is(err, ErrHeld) {
					t.Fatalf("AcquireAll = %v, %v; want ErrHeld, the holders kept changing", leases, err)
				}
				if live, err := m.Locks(t.Context()); err != nil || len(live) != 0 {
					t.Errorf("Locks = %v, %v; want none", live, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AcquireAll = %v", err)
			}
			var got []string
			for _, l := range leases {
				got = append(got, l.Entity)
			}
			if diff := cmp.Diff([]string{"x", "y"}, got); diff != "" {
				t.Errorf("granted entities (-want +got):\n%s", diff)
			}
		})
	}
}
