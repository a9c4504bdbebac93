package lock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/entitylock/entitylock/schema"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// walSizeLimit is the size Open trims an SQLite -wal file back to after a
// checkpoint has copied it into the database (journal_size_limit): twice
// what SQLite's automatic checkpoint lets it reach (1000 pages of 4 KiB).
const walSizeLimit = 8 << 20

// Open opens the database dsn, brings its schema up to date, and returns a
// Manager that owns it: Close closes the database.
//
// A dsn that begins with "postgres://" or "postgresql://" (in any letter
// case), or a libpq keyword/value string ("host=… user=… dbname=…"), is a
// PostgreSQL database (see github.com/jackc/pgx/v5/pgconn.ParseConfig; a
// search_path parameter picks the schema that holds the lock tables). The
// database and the schema must exist; Open creates the tables. A URL of any
// other scheme is refused with ErrInvalidDSN.
//
// Any other dsn is an SQLite database, created if needed: a file path, a
// "file:" URI, or ":memory:" for a private in-memory database shared by
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
// transaction that writes never fails half-way with SQLITE_BUSY.
func Open(ctx context.Context, dsn string, opts ...Option) (*Manager, error) {
	kind, dsn, err := parseDSN(dsn)
	if err != nil {
		return nil, opError("open", "", err)
	}
	if kind == schema.Postgres {
		return openPostgres(ctx, dsn, opts)
	}
	uri, memName, wal, err := buildDSN(dsn)
	if err != nil {
		return nil, opError("open", "", err)
	}
	wk := newWALKeeper()
	db, err := driver.Open(uri, wk.install)
	if err != nil {
		return nil, opError("open", "", err)
	}
	if wal {
		if err = enableWAL(ctx, db); err != nil {
			err = opError("open", "", err)
		}
	}
	var m *Manager
	if err == nil {
		m, err = newManager(ctx, db, schema.SQLite, opts)
	}
	if err != nil {
		db.Close()
		if memName != "" {
			memdb.Delete(memName)
		}
		return nil, err
	}
	m.ownDB, m.memName = true, memName
	m.bg.Go(func() { wk.run(m) })
	return m, nil
}

// buildDSN turns Open's dsn into a "file:" URI for the ncruces driver, with
// the default per-connection pragmas added where the caller set none.
// memName is the name of the in-memory database created for ":memory:", to
// delete on Close; wal says whether Open should switch the file to WAL.
func buildDSN(dsn string) (uri, memName string, wal bool, err error) {
	var u *url.URL
	switch {
	case dsn == "":
		return "", "", false, fmt.Errorf("%w: empty DSN", ErrInvalidOption)
	case dsn == ":memory:":
		memName = "/entitylock-" + rand.Text()
		memdb.Create(memName, nil)
		u = &url.URL{Scheme: "file", OmitHost: true, Path: memName, RawQuery: "vfs=memdb"}
	case len(dsn) >= 5 && strings.EqualFold(dsn[:5], "file:"):
		if u, err = url.Parse(dsn); err != nil {
			return "", "", false, fmt.Errorf("%w: DSN: %v", ErrInvalidOption, err)
		}
	default:
		if fi, err := os.Stat(dsn); err == nil && fi.IsDir() {
			return "", "", false, fmt.Errorf("%w: %q is a directory, not a database file", ErrInvalidOption, dsn)
		}
		u = &url.URL{Scheme: "file", OmitHost: true, Path: dsn}
	}

	q := u.Query()
	has := func(name string) bool {
		for _, p := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), name) {
				return true
			}
		}
		return false
	}
	// busy_timeout goes first: the pragmas after it may need to wait.
	var add []string
	if !has("busy_timeout") {
		add = append(add, fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()))
	}
	// WAL needs shared memory that memdb lacks, and a read-only connection
	// cannot switch journal modes.
	if q.Get("vfs") != "memdb" && q.Get("mode") != "ro" {
		wal = !has("journal_mode")
		if !has("synchronous") {
			add = append(add, "synchronous(normal)")
		}
		if !has("journal_size_limit") {
			add = append(add, fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
		}
		if !has("auto_vacuum") {
			add = append(add, "auto_vacuum(incremental)")
		}
	}
	q["_pragma"] = append(add, q["_pragma"]...)
	u.RawQuery = q.Encode()
	return u.String(), memName, wal, nil
}

// enableWAL switches the database file to WAL, which persists in the file.
// It is done once here rather than as a per-connection DSN pragma because
// the switch needs an exclusive lock, and SQLite reports SQLITE_BUSY at once,
// without the busy handler, when several processes opening a fresh file try
// it together; so the switch is retried until it succeeds or ctx ends.
func enableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(DefaultBusyTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode=wal").Scan(&mode)
		if err == nil || errors.Is(err, sqlite3.READONLY) {
			// A read-only file keeps its mode; so does a file system
			// without WAL support, which reports its mode without error.
			return nil
		}
		if !errors.Is(err, sqlite3.BUSY) && !errors.Is(err, sqlite3.LOCKED) || time.Now().After(deadline) {
			return fmt.Errorf("set journal_mode=wal: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set journal_mode=wal: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
}

// New returns a Manager over db after bringing its schema up to date. db is
// an SQLite database opened with the github.com/ncruces/go-sqlite3/driver
// package, or a PostgreSQL one opened with github.com/jackc/pgx/v5/stdlib;
// any other driver is refused with ErrInvalidOption. The lock tables can
// share db with the application's own. Close does not close db.
//
// From its first wait in Acquire or Do until Close, a Manager holds one of
// db's connections to learn of releases by other processes (PostgreSQL:
// LISTEN; SQLite: reads of PRAGMA data_version): give db room for it (with
// SetMaxOpenConns(1) it does without, and waiters only poll).
func New(ctx context.Context, db *sql.DB, opts ...Option) (*Manager, error) {
	if db == nil {
		return nil, opError("new", "", fmt.Errorf("%w: nil *sql.DB", ErrInvalidOption))
	}
	kind, err := schema.EngineOf(db)
	if err != nil {
		return nil, opError("new", "", fmt.Errorf("%w: %w", ErrInvalidOption, err))
	}
	return newManager(ctx, db, kind, opts)
}
