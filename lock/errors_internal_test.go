package lock

import (
	"errors"
	"fmt"
	"testing"
)

// opError is the one place where what an engine found becomes an exported
// error; the engine's own sentinels never reach the caller.
func TestOpErrorTranslatesEngineOutcomes(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		name     string
		err      error
		want     error
		internal error // must not be matched any more
	}{
		{"no lease", errNoLease, ErrNotHeld, errNoLease},
		{"no lease, wrapped", fmt.Errorf("ctx: %w", errNoLease), ErrNotHeld, errNoLease},
		{"held by another session", errHeldByOther, ErrHeld, errHeldByOther},
		{"conflict", errConflict, ErrHeld, errConflict},
		{"database error", other, other, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := opError("acquire", "e", tc.err)
			if !errors.Is(got, tc.want) {
				t.Errorf("opError(%v) = %v; want it to wrap %v", tc.err, got, tc.want)
			}
			if tc.internal != nil && errors.Is(got, tc.internal) {
				t.Errorf("opError(%v) = %v; still wraps the engine's %v", tc.err, got, tc.internal)
			}
		})
	}
}
