package schema

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/jackc/pgx/v5/stdlib"
)

// runPostgres migrates through golang-migrate's pgx/v5 driver. That driver
// holds a connection for its advisory lock and closes its *sql.DB when done,
// so it gets a private one, opened with the configuration of one of db's
// connections (same server, user, database and search_path).
func runPostgres(ctx context.Context, db *sql.DB, src source.Driver, step func(*migrate.Migrate) error) error {
	own, err := privateDB(ctx, db)
	if err != nil {
		src.Close()
		return err
	}
	drv, err := pgxmigrate.WithInstance(own, &pgxmigrate.Config{MigrationsTable: MigrationsTable})
	if err != nil {
		src.Close()
		own.Close()
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, "entitylock", drv)
	if err != nil {
		src.Close()
		drv.Close()
		return err
	}
	defer m.Close() // closes src, the driver's connection and own
	return step(m)
}

// privateDB opens a one-connection *sql.DB configured like db's connections.
func privateDB(ctx context.Context, db *sql.DB) (*sql.DB, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var own *sql.DB
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("connection is a %T, not a pgx stdlib connection", dc)
		}
		own = stdlib.OpenDB(*c.Conn().Config().Copy())
		return nil
	})
	if err != nil {
		return nil, err
	}
	own.SetMaxOpenConns(1)
	return own, nil
}

// readPostgresVersion returns database.NilVersion when nothing was ever
// migrated in the connection's current schema.
func readPostgresVersion(ctx context.Context, q querier) (int, bool, error) {
	return readVersionRow(ctx, q,
		`SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1)`)
}
