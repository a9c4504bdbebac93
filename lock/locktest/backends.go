package locktest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// PostgresEnv is the environment variable that gives the PostgreSQL server
// the Postgres Backend runs against, as a URL: a database the tests may
// create schemas in.
const PostgresEnv = "ENTITYLOCK_POSTGRES_DSN"

// SQLite returns the Backend of a fresh database file in tb.TempDir per test.
func SQLite() Backend {
	return Backend{
		Name: "sqlite",
		NewDSN: func(tb testing.TB) string {
			return filepath.Join(tb.TempDir(), "locks.db")
		},
		LockWrites: func(ctx context.Context, conn *sql.Conn) error {
			_, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE")
			return err
		},
		WithLockWait: func(tb testing.TB, path string, d time.Duration) string {
			q := url.Values{"_pragma": {fmt.Sprintf("busy_timeout(%d)", d.Milliseconds())}}
			u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
			return u.String()
		},
		IsLockTimeout: func(err error) bool { return errors.Is(err, sqlite3.BUSY) },
		IsReadOnly:    func(err error) bool { return errors.Is(err, sqlite3.READONLY) },
	}
}

// Postgres returns the Backend of a fresh schema per test on the server that
// $ENTITYLOCK_POSTGRES_DSN names; each schema is dropped when its test ends.
// Without the variable it skips tb, saying how to run the tests.
func Postgres(tb testing.TB) Backend {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		tb.Skipf("PostgreSQL tests skipped: set %s, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", PostgresEnv, PostgresEnv)
	}
	return Backend{
		Name:   "postgres",
		NewDSN: func(tb testing.TB) string { return newPostgresSchema(tb, base) },
		LockWrites: func(ctx context.Context, conn *sql.Conn) error {
			for _, q := range []string{"BEGIN", "LOCK TABLE entitylock_leases IN EXCLUSIVE MODE"} {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
			}
			return nil
		},
		WithLockWait: func(tb testing.TB, dsn string, d time.Duration) string {
			return testkit.WithParam(tb, dsn, "lock_timeout", fmt.Sprint(d.Milliseconds()))
		},
		IsLockTimeout:        func(err error) bool { return isSQLState(err, "55P03") }, // lock_not_available
		IsReadOnly:           func(err error) bool { return isSQLState(err, "25006") }, // read_only_sql_transaction
		ReleaseNotifications: true,
	}
}

func isSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

var (
	adminMu  sync.Mutex
	adminDBs = map[string]*sql.DB{}
)

func admin(base string) (*sql.DB, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if db, ok := adminDBs[base]; ok {
		return db, nil
	}
	db, err := lock.OpenDB(context.Background(), base, lock.ReadWrite)
	if err != nil {
		return nil, err
	}
	adminDBs[base] = db
	return db, nil
}

// newPostgresSchema creates an empty schema on the server base names and
// returns base with its search_path set to it; the schema is dropped, with
// everything in it, when tb ends.
func newPostgresSchema(tb testing.TB, base string) string {
	tb.Helper()
	db, err := admin(base)
	if err != nil {
		tb.Fatalf("PostgreSQL at $%s: %v", PostgresEnv, err)
	}
	schema := "entitylock_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := db.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("PostgreSQL at $%s: create schema: %v", PostgresEnv, err)
	}
	tb.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return testkit.WithParam(tb, base, "search_path", schema)
}
