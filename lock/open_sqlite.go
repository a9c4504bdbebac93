package lock

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// walSizeLimit is the size Open trims an SQLite -wal file back to after a
// checkpoint has copied it into the database (journal_size_limit): twice
// what SQLite's automatic checkpoint lets it reach (1000 pages of 4 KiB).
const walSizeLimit = 8 << 20

// openSQLite opens the SQLite database dsn names. With access Create it
// creates the file if needed and switches it to WAL; ReadWrite and
// ReadOnly open an existing file only (ReadOnly with mode=ro), and leave its
// journal mode. Anything at the path but a regular file is refused before
// the driver opens it (a named pipe would block the open); a file that is
// not a database fails in the driver, with SQLITE_NOTADB.
//
// ":memory:" is a private in-memory database shared by every connection of
// the pool, dropped when it closes; the URIs that SQLite would make a
// separate database per connection ("file::memory:", mode=memory, an empty
// path) are refused.
func openSQLite(ctx context.Context, dsn string, access Access) (*openedDB, error) {
	uri, memName, wal, err := buildDSN(dsn, access)
	if err != nil {
		return nil, err
	}
	wk := newWALKeeper()
	db, err := sqlitedriver.Open(uri, wk.install)
	if err == nil && wal {
		if err = enableWAL(ctx, db); err != nil {
			db.Close()
		}
	}
	if err == nil && access != Create {
		// A read of the schema, which a ping does not do, fails at once on
		// a file that is not a database (SQLITE_NOTADB).
		var n int
		if err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			db.Close()
		}
	}
	if err != nil {
		if memName != "" {
			memdb.Delete(memName)
		}
		return nil, err
	}
	o := &openedDB{db: db, run: wk.run}
	if memName != "" {
		o.drop = func() { memdb.Delete(memName) }
	}
	return o, nil
}

// buildDSN turns dsn into a "file:" URI for the ncruces driver, with the
// default per-connection pragmas added where the caller set none, after
// checking the file it names (checkFile). memName is the name of the
// in-memory database created for ":memory:", to delete on close; wal says
// whether to switch the file to WAL.
func buildDSN(dsn string, access Access) (uri, memName string, wal bool, err error) {
	var u *url.URL
	switch {
	case dsn == ":memory:":
		memName = "/entitylock-" + rand.Text()
		memdb.Create(memName, nil)
		u = &url.URL{Scheme: "file", OmitHost: true, Path: memName, RawQuery: "vfs=memdb"}
	case len(dsn) >= 5 && strings.EqualFold(dsn[:5], "file:"):
		if u, err = url.Parse(dsn); err != nil {
			return "", "", false, fmt.Errorf("%w: %v", ErrInvalidDSN, err)
		}
	default:
		u = &url.URL{Scheme: "file", OmitHost: true, Path: dsn}
	}

	q := u.Query()
	path := u.Path
	if path == "" {
		// "file:name" leaves the path opaque and still %-escaped, as SQLite
		// takes it.
		if path, err = url.PathUnescape(u.Opaque); err != nil {
			return "", "", false, fmt.Errorf("%w: %v", ErrInvalidDSN, err)
		}
	}
	if memName == "" && (path == "" || path == ":memory:" || q.Get("mode") == "memory") {
		// SQLite would give each pooled connection a database of its own.
		return "", "", false, fmt.Errorf(`%w: %s is a separate in-memory database per connection; use ":memory:"`, ErrInvalidDSN, dsn)
	}
	if vfs := q.Get("vfs"); vfs != "memdb" {
		if vfs == "" || vfs == "os" {
			fileWAL, err := checkFile(path, access)
			if err != nil {
				return "", "", false, err
			}
			// A WAL file that no connection has open is opened
			// immutable when read-only, so that nothing is created beside
			// it: the handle sees the file as it was when opened.
			if access == ReadOnly && fileWAL && !exists(path+"-wal") && !exists(path+"-shm") {
				q.Set("immutable", "1")
			}
		}
		switch access {
		case ReadOnly:
			q.Set("mode", "ro")
		case ReadWrite:
			if q.Get("mode") == "" {
				q.Set("mode", "rw")
			}
		}
	}
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
		wal = access == Create && !has("journal_mode")
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

var sqliteHeader = []byte("SQLite format 3\x00")

// checkFile refuses, with an error wrapping ErrInvalidDSN, anything at path
// but a regular file, without opening anything else (a named pipe would
// block the open); and a missing file, with one wrapping fs.ErrNotExist,
// unless access is Create and its directory exists. It reports whether the
// file's header says WAL mode. It does not refuse a file whose header is
// not SQLite's: another process may be creating the file right now, and
// SQLite itself reads the header under its file locks (SQLITE_NOTADB).
func checkFile(path string, access Access) (wal bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if dir := filepath.Dir(path); !exists(dir) {
			return false, fmt.Errorf("no database at %s: no directory %s: %w", path, dir, fs.ErrNotExist)
		}
		if access == Create {
			return false, nil
		}
		return false, fmt.Errorf("no database at %s: %w", path, fs.ErrNotExist)
	case err != nil:
		return false, fmt.Errorf("cannot use %s: %w", path, errors.Unwrap(err))
	case fi.IsDir():
		return false, fmt.Errorf("%w: %s is a directory, not a database file", ErrInvalidDSN, path)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("%w: %s is not a regular file (%s)", ErrInvalidDSN, path, fileKind(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("cannot open %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	head := make([]byte, 100)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.HasPrefix(head, sqliteHeader) {
		return false, nil
	}
	// Bytes 18 and 19 are the file format versions: 2 for WAL.
	return head[18] == 2, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
