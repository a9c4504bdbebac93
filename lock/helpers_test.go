package lock_test

import (
	"context"
	"database/sql"
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

// queryStrings runs a query whose rows are one text column each and
// returns them, failing the test on any error.
func queryStrings(tb testing.TB, db *sql.DB, query string, args ...any) []string {
	tb.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
