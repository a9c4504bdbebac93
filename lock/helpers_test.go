package lock_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

type testClock = locktest.Clock

func newTestClock() *testClock { return locktest.NewClock() }

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

func mustSession(tb testing.TB, m *lock.Manager, id string) *lock.Session {
	tb.Helper()
	s, err := m.Session(id)
	if err != nil {
		tb.Fatalf("Session(%q): %v", id, err)
	}
	return s
}

func mustAcquire(tb testing.TB, s *lock.Session, entity string) lock.Lease {
	tb.Helper()
	l, err := s.TryAcquire(context.Background(), entity)
	if err != nil {
		tb.Fatalf("%s: TryAcquire(%q): %v", s.ID(), entity, err)
	}
	return l
}

// rawDB opens a second handle on the file for checks made behind the
// library's back.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// waitFor polls cond until it holds, failing the test after 10s. It waits
// for background work (renewals, sweeps), never for a TTL.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
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
