// Package schema holds entitylock's schema, for SQLite (sqlite/) and for
// PostgreSQL (postgres/), as golang-migrate migrations embedded in the
// binary, and applies them: SQLite and Postgres are each engine's
// Migrations, which package lock picks for a database. Every engine has the
// same migration versions.
//
// The migration version is kept in a table of its own,
// entitylock_schema_migrations, so the lock tables can live in the host
// application's database beside that application's own golang-migrate table.
//
// All migrations pending at once run in a single transaction, together with
// the version row, on either engine: on SQLite a BEGIN IMMEDIATE
// transaction, on PostgreSQL one that first takes an advisory lock keyed by
// the schema. Any number of processes may migrate one database at the same
// moment: they serialize on that lock, the first one migrates, and the
// others find the schema current. No process ever sees a migration
// half-way, and one that fails or is cut short (a crash, a killed
// connection) leaves the database exactly as it was, never marked dirty.
//
// On PostgreSQL the tables go in the connection's current schema (the first
// existing schema of its search_path), so one database can hold several
// independent sets of lock tables; the schema must exist (ErrNoSchema).
package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// MigrationsTable is the table that records the schema version.
const MigrationsTable = "entitylock_schema_migrations"

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Migrations is one engine's embedded migrations and the way to run them on
// that engine. SQLite and Postgres are the two; package lock picks the one
// that matches a database.
type Migrations struct {
	dir string // the engine's folder of migration files
	d   dialect
}

// String names the engine the migrations are for.
func (s *Migrations) String() string { return s.dir }

var (
	// ErrTooNew reports a database whose schema version is newer than any
	// migration this code knows: it was migrated by a newer release.
	ErrTooNew = errors.New("database schema is newer than this code")
	// ErrDirty reports a database whose version row is marked dirty: a
	// migration failed half-way under another tool, or under a release of
	// this library before migrations ran in one transaction. This package
	// never leaves that mark. An operator checks which migration's objects
	// exist and records that version with Force (the command:
	// entitylock migrate force VERSION).
	ErrDirty = errors.New("database schema is marked dirty")
	// ErrUnknownVersion reports a version given to Force that is neither 0
	// (no migration applied) nor one of the embedded migrations.
	ErrUnknownVersion = errors.New("unknown schema version")
)

// Latest returns the highest migration version embedded in this build: the
// same for every engine, whose folders hold the same versions.
func Latest() uint {
	vs := versions()
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// hasVersion reports whether migration v is embedded.
func hasVersion(v uint) bool { return slices.Contains(versions(), v) }

// versions lists the embedded migration versions of every engine, in
// ascending order.
func versions() []uint {
	var out []uint
	paths, _ := fs.Glob(files, "*/*.sql") // the pattern is valid
	for _, p := range paths {
		head, _, ok := strings.Cut(path.Base(p), "_")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(head, 10, 64); err == nil && !slices.Contains(out, uint(v)) {
			out = append(out, uint(v))
		}
	}
	slices.Sort(out)
	return out
}

// Version reports the schema version recorded in db (0 when the database was
// never migrated) and whether it is marked dirty. It only reads.
func (s *Migrations) Version(ctx context.Context, db *sql.DB) (version uint, dirty bool, err error) {
	v, dirty, err := s.d.readVersion(ctx, db)
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
func (s *Migrations) Migrate(ctx context.Context, db *sql.DB) error {
	if v, dirty, err := s.Version(ctx, db); err == nil && !dirty && v == Latest() {
		return nil // current: no lock, no migration connection
	}
	return s.run(ctx, db, func(m *migrate.Migrate) error { return m.Up() })
}

// Force records version as db's schema version, clean, without running any
// migration: the way out of ErrDirty once an operator has checked which
// migrations the database really has. Version 0 (or -1, golang-migrate's
// spelling) records that none is applied. Other versions must be embedded
// in this build; anything else is refused with ErrUnknownVersion and
// changes nothing.
func (s *Migrations) Force(ctx context.Context, db *sql.DB, version int) error {
	if version == 0 {
		version = database.NilVersion
	}
	if version != database.NilVersion && (version < 1 || !hasVersion(uint(version))) {
		return fmt.Errorf("schema: force %d: %w (want 0 or a version from 1 to %d)", version, ErrUnknownVersion, Latest())
	}
	drv := &driver{ctx: ctx, db: db, d: s.d}
	if err := drv.Lock(); err != nil {
		return fmt.Errorf("schema: force %d: %w", version, err)
	}
	err := drv.SetVersion(version, false)
	if uerr := drv.Unlock(); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("schema: force %d: %w", version, err)
	}
	return nil
}

// MigrateDown reverts every migration, dropping the lock tables (and the
// leases in them). It is meant for operators and tests.
func (s *Migrations) MigrateDown(ctx context.Context, db *sql.DB) error {
	return s.run(ctx, db, func(m *migrate.Migrate) error { return m.Down() })
}

func (s *Migrations) run(ctx context.Context, db *sql.DB, step func(*migrate.Migrate) error) error {
	v, dirty, err := s.Version(ctx, db)
	if err != nil {
		return err
	}
	if err := checkVersion(v, dirty); err != nil {
		return fmt.Errorf("schema: migrate: %w", err)
	}

	src, err := iofs.New(files, s.dir)
	if err != nil {
		return fmt.Errorf("schema: migrate: open embedded migrations: %w", err)
	}
	err = runSteps(ctx, db, s.d, src, step)
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

func runSteps(ctx context.Context, db *sql.DB, d dialect, src source.Driver, step func(*migrate.Migrate) error) error {
	// m.Close would close the driver's connection and the source; the caller
	// owns db, and the driver releases its own *sql.Conn in Unlock.
	defer src.Close()
	m, err := migrate.NewWithInstance("iofs", src, "entitylock", &driver{ctx: ctx, db: db, d: d})
	if err != nil {
		return err
	}
	// golang-migrate gives up on Lock after its LockTimeout (15 s) but
	// leaves Lock running: one that succeeded later would hold the
	// migration lock on a connection nobody unlocks. ctx bounds the wait
	// instead: Lock's statements run under it.
	m.LockTimeout = noLockTimeout
	return step(m)
}

// noLockTimeout is golang-migrate's lock timeout here: in effect none.
const noLockTimeout = time.Duration(1 << 62)

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
