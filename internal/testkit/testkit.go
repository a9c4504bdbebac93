// Package testkit holds the helpers that the tests of this module share:
// the conformance suite (lock/locktest), the tests of lock, schema, soak and
// the command. It is internal so that they are not part of locktest's API,
// which is only what an engine author needs to run the suite.
package testkit

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// Clock is a manually advanced clock for lock.WithClock. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads 2026-03-04 05:06:07 UTC.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// MustSession returns m's session id, failing tb if it cannot.
func MustSession(tb testing.TB, m *lock.Manager, id string) *lock.Session {
	tb.Helper()
	s, err := m.Session(id)
	if err != nil {
		tb.Fatalf("Session(%q): %v", id, err)
	}
	return s
}

// MustAcquire takes entity with one TryAcquire, failing tb if it cannot.
func MustAcquire(tb testing.TB, s *lock.Session, entity string) lock.Lease {
	tb.Helper()
	l, err := s.TryAcquire(context.Background(), entity)
	if err != nil {
		tb.Fatalf("%s: TryAcquire(%q): %v", s.ID(), entity, err)
	}
	return l
}

// WaitFor polls cond until it holds, failing tb after 10s. It waits for
// background work (renewals, sweeps, other processes), never for a TTL.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// WithParam returns the URL dsn with its query parameter key set to value.
func WithParam(tb testing.TB, dsn, key, value string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("DSN: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// DB opens a handle on the database dsn names with lock.OpenDB, for checks
// behind the library's back, failing tb if it cannot; it is closed when tb
// ends. It opens as lock.Open does (lock.Create): an SQLite file that does
// not exist yet is created.
func DB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	return openDB(tb, dsn, lock.Create)
}

// ReadOnlyDB is DB for a read-only handle (lock.ReadOnly) on an existing
// database.
func ReadOnlyDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	return openDB(tb, dsn, lock.ReadOnly)
}

func openDB(tb testing.TB, dsn string, access lock.Access) *sql.DB {
	tb.Helper()
	db, err := lock.OpenDB(context.Background(), dsn, access)
	if err != nil {
		tb.Fatalf("open the database behind the library's back: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// QueryStrings runs a query whose rows are one text column each and
// returns them, failing tb on any error.
func QueryStrings(tb testing.TB, db *sql.DB, query string, args ...any) []string {
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

// DirNames lists the names in dir, sorted, failing tb on any error.
func DirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
