// Package schema holds entitylock's schema, for SQLite (sqlite/) and for
// PostgreSQL (postgres/), as golang-migrate migrations embedded in the
// binary, and applies them. Both engines have the same migration versions.
//
// The migration version is kept in a table of its own,
// entitylock_schema_migrations, so the lock tables can live in the host
// application's database beside that application's own golang-migrate table.
//
// On SQLite all migrations pending at once run in a single BEGIN IMMEDIATE
// transaction: several processes that open a fresh database file together
// serialize on SQLite's write lock, the first one migrates, and the others
// find the schema current. A migration that fails leaves the database
// exactly as it was.
//
// On PostgreSQL migrations run through golang-migrate's pgx/v5 driver, which
// serializes concurrent processes with an advisory lock; each migration
// file runs as one implicit transaction. The tables go in the connection's
// current schema (the first of its search_path), so one database can hold
// several independent sets of lock tables.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/stdlib"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
)

// MigrationsTable is the table that records the schema version.
const MigrationsTable = "entitylock_schema_migrations"

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// An Engine is a database system whose schema this package holds.
type Engine int

const (
	// SQLite, through github.com/ncruces/go-sqlite3/driver.
	SQLite Engine = iota + 1
	// Postgres is PostgreSQL, through github.com/jackc/pgx/v5/stdlib.
	Postgres
)

// String names the engine.
func (e Engine) String() string {
	switch e {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Engine(%d)", int(e))
}

func (e Engine) dir() string { return e.String() }

// ErrUnsupportedDriver reports a *sql.DB whose driver is neither of the
// supported ones.
var ErrUnsupportedDriver = errors.New("unsupported database driver")

// EngineOf tells which engine db talks to, from its driver.
func EngineOf(db *sql.DB) (Engine, error) {
	if db == nil {
		return 0, errors.New("schema: nil *sql.DB")
	}
	switch db.Driver().(type) {
	case *sqlitedriver.SQLite:
		return SQLite, nil
	case *stdlib.Driver:
		return Postgres, nil
	}
	return 0, fmt.Errorf("schema: *sql.DB uses driver %T: %w; want github.com/ncruces/go-sqlite3/driver or github.com/jackc/pgx/v5/stdlib", db.Driver(), ErrUnsupportedDriver)
}

var (
	// ErrTooNew reports a database whose schema version is newer than any
	// migration this code knows: it was migrated by a newer release.
	ErrTooNew = errors.New("database schema is newer than this code")
	// ErrDirty reports a database whose last migration was marked as failed
	// half-way (by another tool); it needs an operator's attention.
	ErrDirty = errors.New("database schema is marked dirty")
)

// Latest returns the highest migration version embedded in this build (the
// same for both engines).
func Latest() uint { return latest(SQLite) }

func latest(e Engine) uint {
	var latest uint
	entries, _ := fs.ReadDir(files, e.dir()) // embedded directories always read
	for _, e := range entries {
		head, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(head, 10, 64); err == nil && uint(v) > latest {
			latest = uint(v)
		}
	}
	return latest
}

// Version reports the schema version recorded in db (0 when the database was
// never migrated) and whether it is marked dirty. It only reads.
func Version(ctx context.Context, db *sql.DB) (version uint, dirty bool, err error) {
	e, err := EngineOf(db)
	if err != nil {
		return 0, false, err
	}
	var v int
	if e == Postgres {
		v, dirty, err = readPostgresVersion(ctx, db)
	} else {
		v, dirty, err = readSQLiteVersion(ctx, db)
	}
	if err != nil {
		return 0, false, fmt.Errorf("schema: read version: %w", err)
	}
	if v < 0 {
		return 0, dirty, nil
	}
	return uint(v), dirty, nil
}

// Migrate brings db's schema up to Latest. It is a read and nothing more
// when the schema is already current, so it works on read-only files too.
// It returns an error wrapping ErrTooNew or ErrDirty, and changes nothing,
// when the recorded version is newer than this code or marked dirty.
func Migrate(ctx context.Context, db *sql.DB) error {
	if v, dirty, err := Version(ctx, db); err == nil && !dirty && v == Latest() {
		return nil // current: no lock, no migration connection
	}
	return run(ctx, db, func(m *migrate.Migrate) error { return m.Up() })
}

// MigrateDown reverts every migration, dropping the lock tables (and the
// leases in them). It is meant for operators and tests.
func MigrateDown(ctx context.Context, db *sql.DB) error {
	return run(ctx, db, func(m *migrate.Migrate) error { return m.Down() })
}

func run(ctx context.Context, db *sql.DB, step func(*migrate.Migrate) error) error {
	e, err := EngineOf(db)
	if err != nil {
		return err
	}
	v, dirty, err := Version(ctx, db)
	if err != nil {
		return err
	}
	if err := checkVersion(v, dirty); err != nil {
		return fmt.Errorf("schema: migrate: %w", err)
	}

	src, err := iofs.New(files, e.dir())
	if err != nil {
		return fmt.Errorf("schema: migrate: open embedded migrations: %w", err)
	}
	if e == Postgres {
		err = runPostgres(ctx, db, src, step)
	} else {
		err = runSQLite(ctx, db, src, step)
	}
	var dirtyErr migrate.ErrDirty
	switch {
	case err == nil, errors.Is(err, migrate.ErrNoChange):
		return nil
	case errors.As(err, &dirtyErr):
		return fmt.Errorf("schema: migrate: version %d: %w", dirtyErr.Version, ErrDirty)
	case errors.Is(err, fs.ErrNotExist):
		// Another process moved the version past ours between our first read
		// and the locked one.
		return fmt.Errorf("schema: migrate: %w (this code knows up to version %d)", ErrTooNew, Latest())
	default:
		return fmt.Errorf("schema: migrate: %w", err)
	}
}

func runSQLite(ctx context.Context, db *sql.DB, src source.Driver, step func(*migrate.Migrate) error) error {
	// m.Close would close the driver's connection and the source; the caller
	// owns db, and the driver releases its own *sql.Conn in Unlock.
	defer src.Close()
	m, err := migrate.NewWithInstance("iofs", src, "entitylock", &driver{ctx: ctx, db: db})
	if err != nil {
		return err
	}
	return step(m)
}

func checkVersion(v uint, dirty bool) error {
	if dirty {
		return fmt.Errorf("version %d: %w", v, ErrDirty)
	}
	if v > Latest() {
		return fmt.Errorf("version %d: %w (this code knows up to version %d)", v, ErrTooNew, Latest())
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readVersionRow reads the version row, if the query tableExists, given
// MigrationsTable, finds the table; else it returns database.NilVersion.
func readVersionRow(ctx context.Context, q querier, tableExists string) (int, bool, error) {
	var exists bool
	err := q.QueryRowContext(ctx, tableExists, MigrationsTable).Scan(&exists)
	if err != nil {
		return 0, false, err
	}
	if !exists {
		return database.NilVersion, false, nil
	}
	var (
		version int
		dirty   bool
	)
	err = q.QueryRowContext(ctx, "SELECT version, dirty FROM "+MigrationsTable+" LIMIT 1").Scan(&version, &dirty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return database.NilVersion, false, nil
	case err != nil:
		return 0, false, err
	}
	return version, dirty, nil
}
