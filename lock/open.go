package lock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// Open opens (creating if needed) the SQLite database dsn, brings its schema
// up to date, and returns a Manager that owns it: Close closes the database.
//
// dsn is a file path, a "file:" URI, or ":memory:" for a private in-memory
// database shared by every connection of the Manager's pool (a plain SQLite
// ":memory:" would give each pooled connection its own empty database).
//
// Unless the DSN sets them with _pragma, Open sets busy_timeout to
// DefaultBusyTimeout, journal_mode to WAL and synchronous to NORMAL, which
// lets many processes share the file. Transactions begin IMMEDIATE (the
// driver's default), so a transaction that writes never fails half-way with
// SQLITE_BUSY.
func Open(ctx context.Context, dsn string, opts ...Option) (*Manager, error) {
	uri, memName, err := buildDSN(dsn)
	if err != nil {
		return nil, opError("open", "", err)
	}
	db, err := driver.Open(uri)
	if err != nil {
		return nil, opError("open", "", err)
	}
	m, err := newManager(ctx, db, opts)
	if err != nil {
		db.Close()
		if memName != "" {
			memdb.Delete(memName)
		}
		return nil, err
	}
	m.ownDB, m.memName = true, memName
	return m, nil
}

// buildDSN turns Open's dsn into a "file:" URI for the ncruces driver, with
// the default pragmas added where the caller set none. memName is the name
// of the in-memory database created for ":memory:", to delete on Close.
func buildDSN(dsn string) (uri, memName string, err error) {
	var u *url.URL
	switch {
	case dsn == "":
		return "", "", fmt.Errorf("%w: empty DSN", ErrInvalidOption)
	case dsn == ":memory:":
		memName = "/entitylock-" + rand.Text()
		memdb.Create(memName, nil)
		u = &url.URL{Scheme: "file", OmitHost: true, Path: memName, RawQuery: "vfs=memdb"}
	case strings.HasPrefix(dsn, "file:"):
		if u, err = url.Parse(dsn); err != nil {
			return "", "", fmt.Errorf("%w: DSN: %v", ErrInvalidOption, err)
		}
	default:
		if fi, err := os.Stat(dsn); err == nil && fi.IsDir() {
			return "", "", fmt.Errorf("%w: %q is a directory, not a database file", ErrInvalidOption, dsn)
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
		if !has("journal_mode") {
			add = append(add, "journal_mode(wal)")
		}
		if !has("synchronous") {
			add = append(add, "synchronous(normal)")
		}
	}
	q["_pragma"] = append(add, q["_pragma"]...)
	u.RawQuery = q.Encode()
	return u.String(), memName, nil
}

// New returns a Manager over db, a database opened with the
// github.com/ncruces/go-sqlite3 driver, after bringing its schema up to date.
// The lock tables can share db with the application's own. Close does not
// close db.
func New(ctx context.Context, db *sql.DB, opts ...Option) (*Manager, error) {
	if db == nil {
		return nil, opError("new", "", fmt.Errorf("%w: nil *sql.DB", ErrInvalidOption))
	}
	if _, ok := db.Driver().(*driver.SQLite); !ok {
		return nil, opError("new", "", fmt.Errorf("%w: *sql.DB uses driver %T; want github.com/ncruces/go-sqlite3/driver", ErrInvalidOption, db.Driver()))
	}
	return newManager(ctx, db, opts)
}
