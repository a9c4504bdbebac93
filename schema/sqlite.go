package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/golang-migrate/migrate/v4/database"
)

// driver implements golang-migrate's database.Driver over a caller's
// *sql.DB, without importing any SQLite driver of golang-migrate's own.
//
// Lock takes one connection from the pool and opens BEGIN IMMEDIATE on it;
// Version, SetVersion and Run all execute inside that transaction, and Unlock
// commits it, or rolls it back if anything failed. Holding SQLite's write
// lock for the whole run is what serializes concurrent processes.
type driver struct {
	ctx    context.Context
	db     *sql.DB
	conn   *sql.Conn
	failed bool
}

var _ database.Driver = (*driver)(nil)

// Open is not used: the driver is always built around an existing *sql.DB.
func (d *driver) Open(string) (database.Driver, error) {
	return nil, errors.New("schema: driver cannot open URLs; use Migrate")
}

// Close is a no-op: the caller owns the *sql.DB.
func (d *driver) Close() error { return nil }

func (d *driver) Lock() error {
	if d.conn != nil {
		return database.ErrLocked
	}
	conn, err := d.db.Conn(d.ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	if _, err := conn.ExecContext(d.ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		return fmt.Errorf("begin immediate: %w", err)
	}
	d.conn, d.failed = conn, false
	const create = `CREATE TABLE IF NOT EXISTS ` + MigrationsTable +
		` (version INTEGER NOT NULL PRIMARY KEY, dirty INTEGER NOT NULL) STRICT`
	if _, err := conn.ExecContext(d.ctx, create); err != nil {
		d.failed = true
		d.Unlock()
		return fmt.Errorf("create %s: %w", MigrationsTable, err)
	}
	return nil
}

func (d *driver) Unlock() error {
	if d.conn == nil {
		return database.ErrNotLocked
	}
	conn := d.conn
	d.conn = nil
	defer conn.Close()
	end := "COMMIT"
	if d.failed {
		end = "ROLLBACK"
	}
	// Finish the transaction even when the caller's ctx is done: leaving it
	// open would keep the write lock on a connection going back to the pool.
	if _, err := conn.ExecContext(context.WithoutCancel(d.ctx), end); err != nil {
		return fmt.Errorf("%s: %w", end, err)
	}
	return nil
}

func (d *driver) Run(migration io.Reader) error {
	body, err := io.ReadAll(migration)
	if err != nil {
		d.failed = true
		return err
	}
	if _, err := d.exec(string(body)); err != nil {
		d.failed = true
		return err
	}
	return nil
}

func (d *driver) SetVersion(version int, dirty bool) error {
	if _, err := d.exec("DELETE FROM " + MigrationsTable); err != nil {
		d.failed = true
		return err
	}
	// Same rule as golang-migrate's own drivers: record NilVersion only when
	// dirty, so a fully reverted database has no row at all.
	if version >= 0 || (version == database.NilVersion && dirty) {
		q := "INSERT INTO " + MigrationsTable + " (version, dirty) VALUES (?, ?)"
		if _, err := d.exec(q, version, dirty); err != nil {
			d.failed = true
			return err
		}
	}
	return nil
}

func (d *driver) Version() (int, bool, error) {
	if d.conn != nil {
		return readSQLiteVersion(d.ctx, d.conn)
	}
	return readSQLiteVersion(d.ctx, d.db)
}

// Drop is refused: the lock tables may share a database with the host
// application's, which a driver-level drop would destroy. Use MigrateDown.
func (d *driver) Drop() error {
	return errors.New("schema: drop is not supported; use MigrateDown")
}

func (d *driver) exec(query string, args ...any) (sql.Result, error) {
	if d.conn == nil {
		return nil, database.ErrNotLocked
	}
	return d.conn.ExecContext(d.ctx, query, args...)
}

// readSQLiteVersion returns database.NilVersion when nothing was ever
// migrated.
func readSQLiteVersion(ctx context.Context, q querier) (int, bool, error) {
	return readVersionRow(ctx, q,
		`SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)`)
}
