package lock_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// The helpers shared with the conformance suite.
var (
	mustSession = testkit.MustSession
	mustAcquire = testkit.MustAcquire
	waitFor     = testkit.WaitFor
)

// mustOpen opens a Manager on a fresh database file in t.TempDir and closes
// it when the test ends.
func mustOpen(tb testing.TB, opts ...lock.Option) *lock.Manager {
	tb.Helper()
	return mustOpenPath(tb, filepath.Join(tb.TempDir(), "locks.db"), opts...)
}

func mustOpenPath(tb testing.TB, path string, opts ...lock.Option) *lock.Manager {
	tb.Helper()
	m, err := lock.Open(context.Background(), path, opts...)
	if err != nil {
		tb.Fatalf("Open(%q): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return m
}
