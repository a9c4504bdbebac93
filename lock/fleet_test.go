package lock_test

import (
	"sync"
	"testing"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// A fleet of Managers opening one fresh database at the same instant all
// succeed, round after round, on both engines.
func TestFleetStartInOneProcess(t *testing.T) {
	engines(t, func(t *testing.T, b locktest.Backend) {
		const managers, rounds = 8, 15
		failures := 0
		for round := range rounds {
			dsn := b.NewDSN(t)
			start := make(chan struct{})
			errs := make([]error, managers)
			var wg sync.WaitGroup
			for i := range managers {
				wg.Go(func() {
					<-start
					m, err := lock.Open(t.Context(), dsn)
					if err != nil {
						errs[i] = err
						return
					}
					m.Close()
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					failures++
					t.Errorf("round %d, manager %d: %v", round, i, err)
				}
			}
		}
		if failures > 0 {
			t.Errorf("%d of %d opens failed", failures, managers*rounds)
		}
	})
}
