package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
)

// dbFlag adds --db, defaulting to $ENTITYLOCK_DB.
func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", os.Getenv("ENTITYLOCK_DB"),
		"SQLite database `file`, or postgres:// URL; defaults to $ENTITYLOCK_DB")
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// display names a database in messages: a PostgreSQL URL loses its password.
func display(dsn string) string {
	if !isPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Redacted()
}

// openExisting opens the lock database dsn for an operator command. It
// never creates a file nor the schema; readOnly opens the database
// read-only (a read-only SQLite file, or PostgreSQL transactions that are
// read-only by default), so a listing changes nothing.
func openExisting(ctx context.Context, dsn string, readOnly bool) (*lock.Manager, error) {
	if dsn == "" {
		return nil, usageError{"no database: pass --db or set ENTITYLOCK_DB"}
	}
	raw, err := openRaw(dsn, true)
	if err != nil {
		return nil, err
	}
	v, dirty, err := schema.Version(ctx, raw)
	raw.Close()
	name := display(dsn)
	switch {
	case err != nil:
		return nil, err
	case v == 0:
		return nil, fmt.Errorf("%s has no entitylock schema (run 'entitylock migrate up' to create it)", name)
	case dirty:
		return nil, fmt.Errorf("%s: schema version %d is marked dirty: %w", name, v, lock.ErrSchemaDirty)
	case v > schema.Latest():
		return nil, fmt.Errorf("%s: schema version %d, this binary knows up to %d: %w", name, v, schema.Latest(), lock.ErrSchemaTooNew)
	case v < schema.Latest() && readOnly:
		return nil, fmt.Errorf("%s: schema version %d is older than this binary's %d (run 'entitylock migrate up')", name, v, schema.Latest())
	}
	if isPostgres(dsn) {
		if readOnly {
			dsn = withParam(dsn, "default_transaction_read_only", "on")
		}
		return lock.Open(ctx, dsn)
	}
	q := url.Values{}
	if readOnly {
		q.Set("mode", "ro")
	}
	return lock.Open(ctx, (&url.URL{Scheme: "file", OmitHost: true, Path: dsn, RawQuery: q.Encode()}).String())
}

// withParam sets a query parameter of a URL; pgx passes unknown ones to
// the server as run-time settings.
func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // lock.Open reports the parse error
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// openRaw opens an existing database with the driver alone, for migrations
// and checks. It fails with one clear line on a missing file, one that is
// not a database, or a server that does not answer.
func openRaw(dsn string, readOnly bool) (*sql.DB, error) {
	if isPostgres(dsn) {
		return openRawPostgres(dsn, readOnly)
	}
	if err := mustExist(dsn); err != nil {
		return nil, err
	}
	q := url.Values{"_pragma": {"busy_timeout(10000)"}}
	if readOnly {
		q.Set("mode", "ro")
	}
	db, err := driver.Open((&url.URL{Scheme: "file", OmitHost: true, Path: dsn, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, err
	}
	// Fail now, with a clear error, on a file that is not a database.
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", dsn, err)
	}
	return db, nil
}

func openRawPostgres(dsn string, readOnly bool) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err // pgconn redacts the password in its message
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", display(dsn), err)
	}
	return db, nil
}

func mustExist(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no database at %s", path)
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory, not a database file", path)
	}
	return nil
}

// touch creates an empty file at path unless something is there already.
func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}
