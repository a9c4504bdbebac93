package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ncruces/go-sqlite3"
)

// ErrDatabaseReplaced means the SQLite database file a Manager opened was
// deleted, or replaced by another file, while the Manager ran. Its
// connections still reach the old file, which processes that open the path
// now do not see: leases granted through it would exclude nobody. The
// Manager refuses to grant, extend or renew; Do calls lose their leases.
// Close it and open the path again.
var ErrDatabaseReplaced = errors.New("database file was deleted or replaced")

// ErrDiskFull means a write failed because the file system that holds the
// database is full. The statement was rolled back: the database is as it
// was. On SQLite it is reported for SQLITE_FULL, and for an I/O error while
// the file system has less than a MiB left (the driver reports a full disk
// as a plain I/O error); on PostgreSQL for SQLSTATE 53100.
var ErrDiskFull = errors.New("disk full")

// dbFile is the identity of the file an SQLite database lives in.
type dbFile struct {
	path string      // "" when there is no file to watch (in memory)
	info os.FileInfo // as first opened
}

// openedFile finds the file of db's main database.
func openedFile(ctx context.Context, db *sql.DB) (dbFile, error) {
	var path string
	err := db.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path)
	if err != nil {
		return dbFile{}, fmt.Errorf("find the database file: %w", err)
	}
	info, err := os.Stat(path)
	if path == "" || err != nil {
		return dbFile{}, nil // in memory, or on a VFS of its own
	}
	return dbFile{path: path, info: info}, nil
}

// check returns an error wrapping ErrDatabaseReplaced when the path no
// longer names the file first opened. It costs one stat.
func (f dbFile) check() error {
	if f.path == "" {
		return nil
	}
	info, err := os.Stat(f.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s no longer exists", ErrDatabaseReplaced, f.path)
	case err != nil:
		return fmt.Errorf("check the database file: %w", err)
	case !os.SameFile(f.info, info):
		return fmt.Errorf("%w: %s is another file now", ErrDatabaseReplaced, f.path)
	}
	return nil
}

// nearlyFull is the free space under which an I/O error is taken for a
// full disk.
const nearlyFull = 1 << 20

// explain marks an error of a statement on the file as ErrDiskFull when the
// disk is full.
func (f dbFile) explain(err error) error {
	full := errors.Is(err, sqlite3.FULL)
	if !full && f.path != "" && errors.Is(err, sqlite3.IOERR) {
		free, ok := freeBytes(filepath.Dir(f.path))
		full = ok && free < nearlyFull
	}
	if full {
		return fmt.Errorf("%w: no space left for %s: %w", ErrDiskFull, f.path, err)
	}
	return err
}
