package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/golang-migrate/migrate/v4/database"
)

// dialect is what the driver needs to know of an engine.
type dialect struct {
	// begin opens the run's transaction on conn and takes the lock that
	// serializes runs from every process.
	begin func(ctx context.Context, conn *sql.Conn) error
	// createTable creates MigrationsTable if it does not exist.
	createTable string
	// insertVersion inserts the version row from two parameters.
	insertVersion string
	// readVersion reads the version row, database.NilVersion when none.
	readVersion func(ctx context.Context, q querier) (int, bool, error)
}

// driver implements golang-migrate's database.Driver over a caller's
// *sql.DB, without a driver of golang-migrate's own.
//
// Lock takes one connection from the pool, opens a transaction and takes the
// engine's lock (SQLite's write lock, a PostgreSQL advisory transaction
// lock); Version, SetVersion and Run all execute inside that transaction,
// and Unlock commits it, or rolls it back if anything failed. So a run,
// with its version row, commits whole or not at all: no other process ever
// sees it half-way or marked dirty, and a run cut short by a crash or a
// killed connection leaves the database as it was.
type driver struct {
	ctx    context.Context
	db     *sql.DB
	d      dialect
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
	if err := d.d.begin(d.ctx, conn); err != nil {
		// A failed begin may have left a transaction open on conn.
		conn.ExecContext(context.WithoutCancel(d.ctx), "ROLLBACK")
		conn.Close()
		return err
	}
	d.conn, d.failed = conn, false
	if _, err := conn.ExecContext(d.ctx, d.d.createTable); err != nil {
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
	// open would keep the lock on a connection going back to the pool.
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
		if _, err := d.exec(d.d.insertVersion, version, dirty); err != nil {
			d.failed = true
			return err
		}
	}
	return nil
}

func (d *driver) Version() (int, bool, error) {
	if d.conn != nil {
		return d.d.readVersion(d.ctx, d.conn)
	}
	return d.d.readVersion(d.ctx, d.db)
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
