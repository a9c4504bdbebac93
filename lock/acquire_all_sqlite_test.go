package lock_test

import (
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// On SQLite, AcquireAll gives all its grants one token, guessed by its
// Manager, when every entity is new or released (AcquireAllFree). Whatever
// the guess, and whichever of two Managers on the file granted before,
// each entity's tokens only grow, also across a purge; the caller's own
// live lease is refreshed and an expired one reclaimed, as by Acquire; and
// a refused call writes nothing.
func TestSQLiteAcquireAllTokensOnlyGrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks.db")
	clk := testkit.NewClock()
	now := clk.Now
	opts := []lock.Option{lock.WithClock(now), lock.WithTTL(time.Second), lock.WithRetry(lock.RetryPolicy{})}
	a, b := mustOpenPath(t, path, opts...), mustOpenPath(t, path, opts...)
	sa, sb := mustSession(t, a, "a"), mustSession(t, b, "b")
	ctx := t.Context()

	last := map[string]int64{} // entity → its greatest token so far
	// grant runs s.AcquireAll(names) and checks its leases: each token
	// above the entity's last, or the same for the entities in kept.
	grant := func(t *testing.T, s *lock.Session, names []string, kept, reclaimed map[string]bool) {
		t.Helper()
		got, err := s.AcquireAll(ctx, names...)
		if err != nil {
			t.Fatalf("AcquireAll(%q): %v", names, err)
		}
		var want []lock.Lease
		for _, e := range names {
			want = append(want, lock.Lease{Entity: e, SessionID: s.ID(), ExpiresAt: now().Add(time.Second), Reclaimed: reclaimed[e]})
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(lock.Lease{}, "Token", "AcquiredAt")); diff != "" {
			t.Fatalf("AcquireAll(%q) (-want +got):\n%s", names, diff)
		}
		for _, l := range got {
			switch {
			case kept[l.Entity] && l.Token != last[l.Entity]:
				t.Errorf("%s: refreshed with token %d, want %d kept", l.Entity, l.Token, last[l.Entity])
			case !kept[l.Entity] && l.Token <= last[l.Entity]:
				t.Errorf("%s: granted token %d, not above the earlier %d", l.Entity, l.Token, last[l.Entity])
			case !kept[l.Entity] && !l.AcquiredAt.Equal(now()):
				t.Errorf("%s: acquired at %v, want %v", l.Entity, l.AcquiredAt, now())
			}
			last[l.Entity] = l.Token
		}
	}
	releaseAll := func(t *testing.T, ss ...*lock.Session) {
		t.Helper()
		for _, s := range ss {
			if _, err := s.ReleaseAll(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	xyz := []string{"x", "y", "z"}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"new entities", func(t *testing.T) { grant(t, sa, xyz, nil, nil) }},
		{"released by the caller", func(t *testing.T) {
			releaseAll(t, sa)
			grant(t, sa, xyz, nil, nil)
		}},
		{"granted meanwhile by another Manager", func(t *testing.T) {
			releaseAll(t, sa)
			for range 3 {
				grant(t, sb, []string{"x", "y"}, nil, nil)
				releaseAll(t, sb)
			}
			grant(t, sa, xyz, nil, nil)
		}},
		{"a single grant above the guess", func(t *testing.T) {
			releaseAll(t, sa)
			for range 3 {
				l := mustAcquire(t, sb, "z")
				last["z"] = l.Token
				releaseAll(t, sb)
			}
			grant(t, sa, xyz, nil, nil)
		}},
		{"the caller's own live lease", func(t *testing.T) {
			releaseAll(t, sa)
			grant(t, sa, []string{"x"}, nil, nil)
			clk.Advance(10 * time.Millisecond)
			grant(t, sa, []string{"x", "y"}, map[string]bool{"x": true}, nil)
		}},
		{"an expired lease", func(t *testing.T) {
			releaseAll(t, sa)
			last["z"] = mustAcquire(t, sb, "z").Token
			clk.Advance(2 * time.Second)
			grant(t, sa, []string{"y", "z"}, nil, map[string]bool{"z": true})
		}},
		{"held by another", func(t *testing.T) {
			releaseAll(t, sa)
			last["w"] = mustAcquire(t, sb, "w").Token
			_, err := sa.AcquireAll(ctx, "v", "w")
			var held *lock.HeldError
			if !errors.As(err, &held) || held.Holder.Entity != "w" {
				t.Fatalf("AcquireAll(v, w) = %v, want a *HeldError on w", err)
			}
			if l, err := a.Holder(ctx, "v"); !errors.Is(err, lock.ErrNotHeld) {
				t.Fatalf("Holder(v) = %+v, %v: the refused call wrote it", l, err)
			}
			releaseAll(t, sb)
			grant(t, sa, []string{"v", "w"}, nil, nil)
		}},
		{"purged above the guess", func(t *testing.T) {
			releaseAll(t, sa)
			for range 10 { // x's token goes past every token a has seen
				last["x"] = mustAcquire(t, sb, "x").Token
				releaseAll(t, sb)
			}
			if _, err := b.PurgeExpired(ctx); err != nil {
				t.Fatal(err)
			}
			fence := slices.Max(slices.Collect(maps.Values(last)))
			last["p"], last["q"] = fence, fence // new rows start above the fence
			grant(t, sa, []string{"p", "q"}, nil, nil)
		}},
	}
	for _, st := range steps {
		t.Run(st.name, st.run) // in order: each starts from the last's rows
	}
}
