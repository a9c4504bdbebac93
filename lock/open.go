package lock

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/entitylock/entitylock/schema"
)

// Open opens the database dsn, brings its schema up to date, and returns a
// Manager that owns it: Close closes the database.
//
// A dsn that begins with "postgres://" or "postgresql://" (in any letter
// case), or a libpq keyword/value string ("host=… user=… dbname=…"), is a
// PostgreSQL database (see github.com/jackc/pgx/v5/pgconn.ParseConfig; a
// search_path parameter picks the schema that holds the lock tables). The
// database and the schema must exist; Open creates the tables. A URL with
// an '@' before its query other than the one that ends its user
// information (a password's '@' or '/' left unescaped) is refused with
// ErrInvalidDSN: percent-encode them.
//
// A file path, a "file:" URI (in any letter case), or ":memory:" is an
// SQLite database, created if needed; ":memory:" is for a private in-memory database shared by
// every connection of the Manager's pool (a plain SQLite ":memory:" would
// give each pooled connection its own empty database). Unless the DSN sets
// them with _pragma, Open sets busy_timeout to DefaultBusyTimeout,
// journal_mode to WAL and synchronous to NORMAL, which lets many processes
// share the file. With NORMAL every commit survives a process crash, but
// power loss may roll back the last ones, so a token may be issued again
// after it; "file:path?_pragma=synchronous(full)" syncs every commit and
// never issues a token twice, at the cost of an fsync per write. Open also
// sets journal_size_limit to 8 MiB, to which the -wal file is trimmed back
// after each checkpoint, and auto_vacuum to INCREMENTAL, which takes effect
// in a file Open creates and lets purges give free pages back to the file
// system. Transactions begin IMMEDIATE (the driver's default), so a
// transaction that writes never fails half-way with SQLITE_BUSY. Anything
// at the path but a regular file (a directory, a named pipe) is refused with
// ErrInvalidDSN; a file that is not an SQLite database fails with SQLite's
// NOTADB error (github.com/ncruces/go-sqlite3.NOTADB).
//
// Any other dsn (a URL of another scheme, an empty string) is refused with
// ErrInvalidDSN, and nothing is created for it; so is an invalid option,
// with its error, before the database is opened.
func Open(ctx context.Context, dsn string, opts ...Option) (*Manager, error) {
	k, err := kindOfDSN(dsn)
	if err != nil {
		return nil, opError("open", "", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	o, err := k.open(ctx, dsn, Create)
	if err != nil {
		return nil, opError("open", "", err)
	}
	m, err := newManager(ctx, k, o.db, o, cfg)
	if err != nil {
		o.close()
		return nil, err
	}
	return m, nil
}

// New returns a Manager over db after bringing its schema up to date. db is
// an SQLite database opened with the github.com/ncruces/go-sqlite3/driver
// package, or a PostgreSQL one opened with github.com/jackc/pgx/v5/stdlib;
// any other driver is refused with ErrInvalidOption. The lock tables can
// share db with the application's own. Close does not close db.
//
// From its first wait in Acquire or Do until Close, a Manager holds one of
// db's connections to learn of releases by other processes (PostgreSQL:
// LISTEN; SQLite: reads of the leases it starts to wait for): give db room
// for it (with SetMaxOpenConns(1) it does without, and waiters only poll).
func New(ctx context.Context, db *sql.DB, opts ...Option) (*Manager, error) {
	k, err := kindOfDB(db)
	if err != nil {
		return nil, opError("new", "", err)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newManager(ctx, k, db, nil, cfg)
}

// Access says what OpenDB may do to a database.
type Access int

const (
	// ReadOnly changes nothing and creates nothing: an SQLite file is
	// opened read-only, a PostgreSQL session's transactions are read-only.
	// An SQLite file in WAL mode that no process has open (no -wal or -shm
	// file beside it) is opened immutable, so that nothing is created
	// beside it: the handle then sees the file as it was when opened.
	ReadOnly Access = iota + 1
	// ReadWrite may change rows of an existing database; it creates no
	// SQLite file and leaves its journal mode.
	ReadWrite
	// Create opens as Open does: it creates an SQLite file that does not
	// exist and switches it to WAL.
	Create
)

// OpenDB opens the database dsn names, by the same rules and with the same
// per-connection settings as Open, without creating, checking or migrating
// the lock tables: for New, for an operator's tool, or for the schema
// package (SchemaOf tells which of its Migrations db takes). The caller
// closes it. A Manager that New makes over it lacks two things Open's has:
// the background checkpoints that bound an SQLite -wal file under several
// busy processes, and, on PostgreSQL, the pings of pooled connections after
// one was found dead. ":memory:" is refused with ErrInvalidDSN (its
// database would live only as long as the handle: use Open); so is a DSN
// that Open refuses. With ReadOnly or ReadWrite a missing SQLite file is
// an error wrapping fs.ErrNotExist.
func OpenDB(ctx context.Context, dsn string, access Access) (*sql.DB, error) {
	if access < ReadOnly || access > Create {
		return nil, opError("open", "", fmt.Errorf("%w: access %d", ErrInvalidOption, access))
	}
	k, err := kindOfDSN(dsn)
	if err != nil {
		return nil, opError("open", "", err)
	}
	o, err := k.open(ctx, dsn, access)
	if err != nil {
		return nil, opError("open", "", err)
	}
	if o.drop != nil {
		o.close()
		return nil, opError("open", "", fmt.Errorf("%w: %s lives only as long as its handle: use Open", ErrInvalidDSN, dsn))
	}
	return o.db, nil
}

// SchemaOf returns the migrations of db's engine, to read, apply, revert or
// force its schema version with the schema package; or an error wrapping
// ErrInvalidOption for a driver no engine takes.
func SchemaOf(db *sql.DB) (*schema.Migrations, error) {
	k, err := kindOfDB(db)
	if err != nil {
		return nil, err
	}
	return k.migrations, nil
}
