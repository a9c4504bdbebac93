package locktest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// harness gives the tests their databases.
type harness struct{ b Backend }

// dsn names a fresh database for t.
func (h *harness) dsn(t testing.TB) string {
	t.Helper()
	return h.b.NewDSN(t)
}

// open opens a Manager on a fresh database, closed when t ends.
func (h *harness) open(t testing.TB, opts ...lock.Option) *lock.Manager {
	t.Helper()
	return h.openDSN(t, h.dsn(t), opts...)
}

// openDSN opens a Manager on dsn, closed when t ends.
func (h *harness) openDSN(t testing.TB, dsn string, opts ...lock.Option) *lock.Manager {
	t.Helper()
	m, err := lock.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open(%s database): %v", h.b.Name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// raw opens a second handle on the database dsn names, for checks behind
// the library's back; it is closed when t ends.
func (h *harness) raw(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	return testkit.DB(t, dsn)
}

// blockLeaseWrites makes every write to the lease table wait, while reads
// go on, until the returned function is called (Backend.LockWrites, in a
// transaction on one of db's connections).
func (h *harness) blockLeaseWrites(t testing.TB, db *sql.DB) (unblock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.b.LockWrites(ctx, conn); err != nil {
		conn.Close()
		t.Fatalf("%s: lock the lease table's writes: %v", h.b.Name, err)
	}
	return func() {
		conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
	}
}

// fastRetry makes Acquire give up quickly in tests that expect contention.
var fastRetry = lock.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

// dumpLeases reads the lease and fence tables behind the library's back, so
// a test can check that a rejected call left them as they were.
func dumpLeases(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return testkit.QueryStrings(t, db, `SELECT entity || '|' || session_id || '|' || token || '|' ||
		acquired_at || '|' || expires_at FROM entitylock_leases
		UNION ALL SELECT 'fence|' || last_token FROM entitylock_fence ORDER BY 1`)
}

// Short names inside the suite.
var (
	newTestClock = testkit.NewClock
	mustSession  = testkit.MustSession
	mustAcquire  = testkit.MustAcquire
	waitFor      = testkit.WaitFor
)
