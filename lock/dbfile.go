package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// ErrDatabaseReplaced means the SQLite database file a Manager opened was
// deleted, or replaced by another file, while the Manager ran. Its
// connections still reach the old file, which processes that open the path
// now do not see: leases granted through it would exclude nobody. The
// Manager refuses to grant, extend or renew; Do calls lose their leases.
// Close it and open the path again.
var ErrDatabaseReplaced = errors.New("database file was deleted or replaced")

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
