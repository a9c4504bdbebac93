package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ncruces/go-sqlite3"
	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
)

// dbFlag adds --db, defaulting to $ENTITYLOCK_DB.
func dbFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("db", os.Getenv("ENTITYLOCK_DB"),
		"SQLite `file`, or PostgreSQL URL or DSN (default $ENTITYLOCK_DB)")
}

// display names a database in messages: a PostgreSQL DSN loses its
// password.
func display(dsn string) string { return lock.RedactDSN(dsn) }

// database is a lock Manager over a connection pool the command opened
// itself, in the mode the command needs.
type database struct {
	*lock.Manager
	raw *sql.DB // nil when the Manager owns its database (lock.Open)
}

// Close closes the Manager, then the pool; it is idempotent.
func (d *database) Close() error {
	err := d.Manager.Close()
	if d.raw != nil {
		err = errors.Join(err, d.raw.Close())
		d.raw = nil
	}
	return err
}

// openExisting opens the lock database dsn for an operator command. It
// never creates a file nor the schema, and checks the schema version first
// so that an old or newer schema is an error rather than a migration.
func openExisting(ctx context.Context, dsn string, access lock.Access) (*database, error) {
	raw, err := openRaw(ctx, dsn, access)
	if err != nil {
		return nil, err
	}
	s, err := lock.SchemaOf(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	v, dirty, err := s.Version(ctx, raw)
	name := display(dsn)
	switch {
	case err != nil:
	case v == 0:
		err = fmt.Errorf("%s has no entitylock schema (run 'entitylock migrate up' to create it)", name)
	case dirty:
		err = fmt.Errorf("%s: schema version %d is marked dirty (see 'entitylock migrate force --help'): %w", name, v, lock.ErrSchemaDirty)
	case v > schema.Latest():
		err = fmt.Errorf("%s: schema version %d, this binary knows up to %d: %w", name, v, schema.Latest(), lock.ErrSchemaTooNew)
	case v < schema.Latest():
		err = fmt.Errorf("%s: schema version %d is older than this binary's %d (run 'entitylock migrate up')", name, v, schema.Latest())
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	m, err := lock.New(ctx, raw)
	if err != nil {
		raw.Close()
		return nil, explain(dsn, err)
	}
	return &database{m, raw}, nil
}

// openDemo opens dsn for the demo: an existing database as it is (an
// SQLite file keeps its journal mode), a missing one created by lock.Open.
func openDemo(ctx context.Context, dsn string, opts ...lock.Option) (*database, error) {
	raw, err := lock.OpenDB(ctx, dsn, lock.ReadWrite)
	if err != nil {
		// A database to create, or one that lives as long as its Manager.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, lock.ErrInvalidDSN) {
			m, err := lock.Open(ctx, dsn, opts...)
			if err != nil {
				return nil, explain(dsn, err)
			}
			return &database{Manager: m}, nil
		}
		return nil, explain(dsn, err)
	}
	m, err := lock.New(ctx, raw, opts...)
	if err != nil {
		raw.Close()
		return nil, explain(dsn, err)
	}
	return &database{m, raw}, nil
}

// openRaw opens an existing database with lock.OpenDB, for migrations and
// checks, or fails with one clear line. lock.ReadOnly changes nothing and
// creates nothing beside an SQLite file; lock.ReadWrite changes rows, never
// an SQLite file's journal mode; lock.Create creates a missing SQLite file.
func openRaw(ctx context.Context, dsn string, access lock.Access) (*sql.DB, error) {
	if dsn == "" {
		return nil, usageError{"no database: pass --db or set ENTITYLOCK_DB"}
	}
	db, err := lock.OpenDB(ctx, dsn, access)
	if err != nil {
		return nil, explain(dsn, err)
	}
	return db, nil
}

// dbError is a database error said in one line for a person, keeping the
// cause for errors.Is.
type dbError struct {
	msg string
	err error
}

func (e *dbError) Error() string { return e.msg }
func (e *dbError) Unwrap() error { return e.err }

// explain turns a driver's error on dsn into one line without the layers
// it went through: the database, then what went wrong.
func explain(dsn string, err error) error {
	name := display(dsn)
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var opErr *net.OpError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, sqlite3.NOTADB):
		return &dbError{name + " is not an SQLite database", err}
	case errors.Is(err, sqlite3.CANTOPEN):
		return &dbError{"cannot open " + name, err}
	case errors.Is(err, lock.ErrInvalidDSN), errors.Is(err, fs.ErrNotExist):
		// The library's words, without the layers: "lock: open: invalid
		// option: DSN: ".
		msg := strings.TrimPrefix(err.Error(), "lock: open: ")
		return &dbError{strings.TrimPrefix(msg, lock.ErrInvalidDSN.Error()+": "), err}
	case errors.As(err, &pgErr):
		return &dbError{fmt.Sprintf("%s: %s (SQLSTATE %s)", name, pgErr.Message, pgErr.Code), err}
	case errors.As(err, &opErr):
		return &dbError{fmt.Sprintf("cannot connect to %s: %s %s: %v", name, opErr.Op, opErr.Addr, opErr.Err), err}
	case errors.As(err, &connErr):
		return &dbError{fmt.Sprintf("cannot connect to %s: %s", name, oneLine(errors.Unwrap(connErr))), err}
	}
	return err
}
