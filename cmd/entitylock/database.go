package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
)

// dbFlag adds --db, defaulting to $ENTITYLOCK_DB.
func dbFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("db", os.Getenv("ENTITYLOCK_DB"),
		"SQLite `file`, or PostgreSQL URL or DSN (default $ENTITYLOCK_DB)")
}

// urlScheme matches the scheme of a URL ("name://…").
var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// isPostgres tells a PostgreSQL URL or DSN from an SQLite file name, as
// lock.Open does.
func isPostgres(dsn string) bool {
	e, err := lock.EngineOfDSN(dsn)
	return err == nil && e == schema.Postgres
}

// sqlitePath returns the file an SQLite --db names: a path, or the path of
// a "file:" URI, whose query it returns too. Other URLs are refused.
func sqlitePath(dsn string) (path string, query url.Values, err error) {
	if m := urlScheme.FindStringSubmatch(dsn); m != nil && !strings.EqualFold(m[1], "file") {
		return "", nil, usagef("--db %s: want an SQLite file, a postgres:// URL or a key=value DSN, not a %s:// URL", display(dsn), m[1])
	}
	if !strings.HasPrefix(dsn, "file:") {
		return dsn, url.Values{}, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, usagef("--db %s: %v", dsn, err)
	}
	path = u.Path
	if path == "" {
		path = u.Opaque
	}
	return path, u.Query(), nil
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(\\.|[^'])*'|\S+)`)

// display names a database in messages: a PostgreSQL DSN loses its password.
func display(dsn string) string {
	if urlScheme.MatchString(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "the database URL"
		}
		return u.Redacted()
	}
	if isPostgres(dsn) {
		return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
	}
	return dsn
}

// database is a lock Manager over a connection pool the command opened
// itself, in the mode the command needs.
type database struct {
	*lock.Manager
	raw *sql.DB
}

func (d *database) Close() error {
	err := d.Manager.Close()
	return errors.Join(err, d.raw.Close())
}

// openMode is how an operator command opens an existing database.
type openMode int

const (
	readOnly  openMode = iota // change nothing, create no file
	readWrite                 // change rows, never the file's journal mode
	create                    // migrate up: create the SQLite file if missing
)

// openExisting opens the lock database dsn for an operator command. It
// never creates a file nor the schema, and checks the schema version first
// so that an old or newer schema is an error rather than a migration.
func openExisting(ctx context.Context, dsn string, mode openMode) (*database, error) {
	raw, err := openRaw(ctx, dsn, mode)
	if err != nil {
		return nil, err
	}
	v, dirty, err := schema.Version(ctx, raw)
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

// openRaw opens an existing database with the driver alone, for migrations
// and checks, and pings it. It fails with one clear line on anything but
// a regular file that holds an SQLite database (or is empty), and on a
// server that does not answer.
//
// On SQLite, readOnly opens the file read-only; a WAL-mode file that no
// connection has open (it has no -wal or -shm file beside it) is opened
// immutable, so that nothing is created beside it. A writer that opens the
// file meanwhile writes to a new -wal, which the read ignores: the read sees
// the file as it was, which is right for one snapshot, not for a connection
// kept open (watch opens one per snapshot). No mode changes the file's
// journal mode.
func openRaw(ctx context.Context, dsn string, mode openMode) (*sql.DB, error) {
	if dsn == "" {
		return nil, usageError{"no database: pass --db or set ENTITYLOCK_DB"}
	}
	if isPostgres(dsn) {
		return openRawPostgres(ctx, dsn, mode == readOnly)
	}
	path, q, err := sqlitePath(dsn)
	if err != nil {
		return nil, err
	}
	if mode == create {
		if err := createFile(path); err != nil {
			return nil, err
		}
	}
	wal, err := checkSQLiteFile(path)
	if err != nil {
		return nil, err
	}
	q["_pragma"] = append([]string{"busy_timeout(10000)"}, q["_pragma"]...)
	if mode == readOnly {
		q.Set("mode", "ro")
		if wal && !exists(path+"-wal") && !exists(path+"-shm") {
			q.Set("immutable", "1")
		}
	}
	db, err := driver.Open((&url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}).String())
	if err == nil {
		err = db.PingContext(ctx)
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		return nil, explain(dsn, err)
	}
	return db, nil
}

func openRawPostgres(ctx context.Context, dsn string, readOnly bool) (*sql.DB, error) {
	if i := strings.Index(dsn, "://"); i > 0 {
		dsn = strings.ToLower(dsn[:i]) + dsn[i:] // pgx knows the scheme in lower case only
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a valid PostgreSQL URL or DSN: %w", err) // pgconn redacts the password
	}
	if readOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, explain(dsn, err)
	}
	return db, nil
}

var sqliteHeader = []byte("SQLite format 3\x00")

// checkSQLiteFile refuses anything but a regular file that is empty or
// starts with an SQLite header, without opening anything else (a FIFO
// would block the open), and reports whether the file is in WAL mode.
func checkSQLiteFile(path string) (wal bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if dir := filepath.Dir(path); !exists(dir) {
			return false, fmt.Errorf("no database at %s: no directory %s", path, dir)
		}
		return false, fmt.Errorf("no database at %s", path)
	case err != nil:
		return false, fmt.Errorf("cannot use %s: %w", path, errors.Unwrap(err))
	case fi.IsDir():
		return false, fmt.Errorf("%s is a directory, not a database file", path)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("%s is not a regular file (%s): want an SQLite database file or a PostgreSQL URL", path, fileKind(fi.Mode()))
	case fi.Size() == 0:
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("cannot open %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	head := make([]byte, 100)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.HasPrefix(head, sqliteHeader) {
		return false, fmt.Errorf("%s is not an SQLite database", path)
	}
	// Bytes 18 and 19 are the file format versions: 2 for WAL.
	return head[18] == 2, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// createFile creates an empty file at path unless something is there.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	switch {
	case errors.Is(err, os.ErrExist):
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cannot create %s: no directory %s", path, filepath.Dir(path))
	case err != nil:
		return fmt.Errorf("cannot create %s: %w", path, errors.Unwrap(err))
	}
	return f.Close()
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
	case errors.As(err, &pgErr):
		return &dbError{fmt.Sprintf("%s: %s (SQLSTATE %s)", name, pgErr.Message, pgErr.Code), err}
	case errors.As(err, &opErr):
		return &dbError{fmt.Sprintf("cannot connect to %s: %s %s: %v", name, opErr.Op, opErr.Addr, opErr.Err), err}
	case errors.As(err, &connErr):
		return &dbError{fmt.Sprintf("cannot connect to %s: %s", name, oneLine(errors.Unwrap(connErr))), err}
	}
	return err
}
