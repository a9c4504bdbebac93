package lock_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/entitylock/entitylock/db/pgdb"
	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// withPgxConn runs fn on a connection of db of its own, then discards the
// connection, with whatever it listens for and the locks it holds.
func withPgxConn(t *testing.T, db *sql.DB, fn func(c *pgx.Conn)) {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		fn(dc.(*stdlib.Conn).Conn())
		return driver.ErrBadConn
	})
	if err != driver.ErrBadConn {
		t.Fatal(err)
	}
}

// withPgxTx runs fn in a transaction on a connection of db of its own, then
// rolls it back, unless fn ended it, and discards the connection.
func withPgxTx(t *testing.T, db *sql.DB, fn func(tx pgx.Tx)) {
	t.Helper()
	withPgxConn(t, db, func(c *pgx.Conn) {
		tx, err := c.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		fn(tx)
	})
}

// nextRelease returns the entity of the next release notification for
// schema that c receives, skipping those of other schemas.
func nextRelease(t *testing.T, c *pgx.Conn, schema string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("no release notification for %s: %v", schema, err)
		}
		if entity, ok := strings.CutPrefix(n.Payload, schema+"/"); ok {
			return entity
		}
	}
}

func mustExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A release notifies only while a connection that listens is registered
// for the schema (as a Manager's listener registers itself): a connection
// that merely runs LISTEN hears the releases made after it registered, and
// none from before.
func TestPostgresReleaseNotifiesOnlyWhileListened(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	m := mustOpenPath(t, dsn)
	s := mustSession(t, m, "holder")
	release := func(entity string) {
		t.Helper()
		mustAcquire(t, s, entity)
		if ok, err := s.Release(t.Context(), entity); err != nil || !ok {
			t.Fatalf("Release(%q) = %v, %v", entity, ok, err)
		}
	}
	withPgxConn(t, testkit.DB(t, dsn), func(c *pgx.Conn) {
		var schema string
		if err := c.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		mustExec(t, c, "LISTEN entitylock")
		release("entity::unheard")
		mustExec(t, c, "SELECT entitylock_listen()")
		release("entity::heard")
		if got := nextRelease(t, c, schema); got != "entity::heard" {
			t.Errorf("first notification names %q; want entity::heard (a release with nobody registered notifies nobody)", got)
		}
	})
}

// Every way of releasing notifies a registered listener: the releases
// notify from their own statements (schema version 3), not from a trigger.
// (Do starts the Manager's own listener, so silence is checked statement by
// statement, in TestPostgresReleaseStatementsNotifyOnlyWhileListened.)
func TestPostgresEveryReleaseNotifies(t *testing.T) {
	tests := []struct {
		name    string
		release func(t *testing.T, m *lock.Manager, s *lock.Session, entity string)
	}{
		{"Release", func(t *testing.T, _ *lock.Manager, s *lock.Session, entity string) {
			mustAcquire(t, s, entity)
			if ok, err := s.Release(t.Context(), entity); err != nil || !ok {
				t.Fatalf("Release = %v, %v", ok, err)
			}
		}},
		{"Do", func(t *testing.T, _ *lock.Manager, s *lock.Session, entity string) {
			if err := s.Do(t.Context(), entity, func(context.Context, lock.Lease) error { return nil }); err != nil {
				t.Fatalf("Do = %v", err)
			}
		}},
		{"ReleaseAll", func(t *testing.T, _ *lock.Manager, s *lock.Session, entity string) {
			mustAcquire(t, s, entity)
			if n, err := s.ReleaseAll(t.Context()); err != nil || n != 1 {
				t.Fatalf("ReleaseAll = %d, %v", n, err)
			}
		}},
		{"ForceRelease", func(t *testing.T, m *lock.Manager, s *lock.Session, entity string) {
			mustAcquire(t, s, entity)
			if ok, err := m.ForceRelease(t.Context(), entity); err != nil || !ok {
				t.Fatalf("ForceRelease = %v, %v", ok, err)
			}
		}},
	}
	b := locktest.Postgres(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := b.NewDSN(t)
			m := mustOpenPath(t, dsn)
			s := mustSession(t, m, "holder")
			withPgxConn(t, testkit.DB(t, dsn), func(c *pgx.Conn) {
				var schema string
				if err := c.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
					t.Fatal(err)
				}
				mustExec(t, c, "LISTEN entitylock")
				mustExec(t, c, "SELECT entitylock_listen()")
				entity := "entity::" + tt.name
				tt.release(t, m, s, entity)
				if got := nextRelease(t, c, schema); got != entity {
					t.Errorf("notification names %q; want %q", got, entity)
				}
			})
		})
	}
}

// Each of the four release statements notifies a listener registered for
// the schema, and nobody while none is registered.
func TestPostgresReleaseStatementsNotifyOnlyWhileListened(t *testing.T) {
	b := locktest.Postgres(t)
	unheard := releaseStatements("entity::unheard", "holder")
	heard := releaseStatements("entity::heard", "holder")
	for name := range heard {
		t.Run(name, func(t *testing.T) {
			dsn := b.NewDSN(t)
			mustOpenPath(t, dsn) // migrates; it waits for nothing, so it does not listen
			raw := testkit.DB(t, dsn)
			grantAndRelease := func(entity string, rel releaseStatement) {
				t.Helper()
				withPgxConn(t, raw, func(c *pgx.Conn) {
					q := pgdb.New(c)
					row, err := q.Acquire(t.Context(), pgdb.AcquireParams{Entity: entity, SessionID: "holder", TtlMs: 60_000})
					if err != nil {
						t.Fatalf("Acquire(%q): %v", entity, err)
					}
					if n, err := rel(t.Context(), q, row.Token); err != nil || n != 1 {
						t.Fatalf("%s(%q) = %d, %v; want 1 row", name, entity, n, err)
					}
				})
			}
			withPgxConn(t, raw, func(c *pgx.Conn) {
				var schema string
				if err := c.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
					t.Fatal(err)
				}
				mustExec(t, c, "LISTEN entitylock")
				grantAndRelease("entity::unheard", unheard[name])
				mustExec(t, c, "SELECT entitylock_listen()")
				grantAndRelease("entity::heard", heard[name])
				if got := nextRelease(t, c, schema); got != "entity::heard" {
					t.Errorf("first notification names %q; want entity::heard (a release with nobody registered notifies nobody)", got)
				}
			})
		})
	}
}

// A release that found no listener holds the registry's lock until it
// commits, so a listener registering meanwhile returns only after that
// commit: the wake-up that follows registration sees the release.
func TestPostgresListenWaitsForReleaseThatFoundNoListener(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	m := mustOpenPath(t, dsn)
	mustAcquire(t, mustSession(t, m, "holder"), "entity::x")
	raw := testkit.DB(t, dsn)
	// The library's own release statement, in a transaction the test ends.
	withPgxTx(t, raw, func(tx pgx.Tx) {
		if n, err := pgdb.New(tx).Release(t.Context(), pgdb.ReleaseParams{Entity: "entity::x", SessionID: "holder"}); err != nil || n != 1 {
			t.Fatalf("Release statement = %d, %v; want 1 row", n, err)
		}
		listenWaitsForCommit(t, raw, tx)
	})
}

// listenWaitsForCommit checks that a listener registering while tx holds
// a release waits for tx to commit.
func listenWaitsForCommit(t *testing.T, raw *sql.DB, tx pgx.Tx) {
	t.Helper()
	withPgxConn(t, raw, func(c *pgx.Conn) {
		pid := c.PgConn().PID()
		registered := make(chan error, 1)
		go func() {
			_, err := c.Exec(context.Background(), "SELECT entitylock_listen()")
			registered <- err
		}()
		waitFor(t, "the registration to wait for the release's lock", func() bool {
			got := testkit.QueryStrings(t, raw, `SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1`, pid)
			return len(got) == 1 && got[0] == "Lock"
		})
		select {
		case err := <-registered:
			t.Fatalf("registration returned before the release committed: %v", err)
		default:
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-registered:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("registration still waiting 10s after the release committed")
		}
	})
}

// A release that waits for its row (here held FOR SHARE by a transaction,
// as Guard holds it) does not hold the registry's lock meanwhile: a
// listener registers at once, not when that transaction ends. (A release
// that tried the registry before locking its row, as a condition of its
// WHERE clause would, kept every listener of the schema waiting.)
func TestPostgresListenDoesNotWaitForReleaseWaitingForItsRow(t *testing.T) {
	b := locktest.Postgres(t)
	for name, rel := range releaseStatements("entity::guarded", "holder") {
		t.Run(name, func(t *testing.T) {
			dsn := b.NewDSN(t)
			m := mustOpenPath(t, dsn)
			l := mustAcquire(t, mustSession(t, m, "holder"), "entity::guarded")
			raw := testkit.DB(t, dsn)
			withPgxTx(t, raw, func(guard pgx.Tx) {
				mustExecTx(t, guard, "SELECT 1 FROM entitylock_leases WHERE entity = 'entity::guarded' FOR SHARE")
				released := make(chan error, 1)
				withPgxConn(t, raw, func(c *pgx.Conn) {
					pid := c.PgConn().PID()
					go func() {
						_, err := rel(context.Background(), pgdb.New(c), l.Token)
						released <- err
					}()
					waitFor(t, "the release to wait for the guarded row", func() bool {
						got := testkit.QueryStrings(t, raw, `SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1`, pid)
						return len(got) == 1 && got[0] == "Lock"
					})
					withPgxConn(t, raw, func(lc *pgx.Conn) {
						ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
						defer cancel()
						if _, err := lc.Exec(ctx, "SELECT entitylock_listen()"); err != nil {
							t.Errorf("registering while a release waits for its row: %v", err)
						}
					})
					if err := guard.Rollback(t.Context()); err != nil {
						t.Fatal(err)
					}
					if err := <-released; err != nil {
						t.Fatalf("%s: %v", name, err)
					}
				})
			})
		})
	}
}

func mustExecTx(t *testing.T, tx pgx.Tx, sql string) {
	t.Helper()
	if _, err := tx.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
