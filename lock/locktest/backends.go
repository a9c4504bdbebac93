package locktest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"       // database/sql driver "pgx"
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"
)

// PostgresEnv is the environment variable that gives the PostgreSQL server
// the suite runs against, as a URL: a database the tests may create
// schemas in.
const PostgresEnv = "ENTITYLOCK_POSTGRES_DSN"

// SQLite returns the Backend of a fresh database file in tb.TempDir per test.
func SQLite() Backend {
	return Backend{
		Name: "sqlite",
		NewDSN: func(tb testing.TB) string {
			return filepath.Join(tb.TempDir(), "locks.db")
		},
		OpenRaw: func(tb testing.TB, dsn string) *sql.DB {
			return openRaw(tb, "sqlite3", "file:"+dsn+"?_pragma=busy_timeout(10000)")
		},
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
		NewDSN: func(tb testing.TB) string { return NewPostgresSchema(tb, base) },
		OpenRaw: func(tb testing.TB, dsn string) *sql.DB {
			return openRaw(tb, "pgx", dsn)
		},
	}
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
	db, err := sql.Open("pgx", base)
	if err != nil {
		return nil, err
	}
	adminDBs[base] = db
	return db, nil
}

// NewPostgresSchema creates an empty schema on the server base names and
// returns base with its search_path set to it; the schema is dropped, with
// everything in it, when tb ends.
func NewPostgresSchema(tb testing.TB, base string) string {
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
	return WithParam(tb, base, "search_path", schema)
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

func openRaw(tb testing.TB, driver, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(fmt.Errorf("open %s: %w", driver, err))
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
