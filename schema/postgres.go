package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrNoSchema reports a PostgreSQL connection whose search_path names no
// schema that exists, so there is nowhere to put the lock tables. Create
// the schema (CREATE SCHEMA name), or fix the search_path; the library does
// not create it, since a mistyped name would silently make a second,
// separate set of locks that excludes nobody.
var ErrNoSchema = errors.New("no schema of the search_path exists")

// Postgres is the schema of PostgreSQL databases opened with
// github.com/jackc/pgx/v5/stdlib.
var Postgres = &Migrations{dir: "postgres", d: postgresDialect}

// postgresDialect runs migrations in one transaction that first takes an
// advisory transaction lock keyed by the current schema: processes that
// start together wait for each other, and the first one migrates. DDL is
// transactional on PostgreSQL, so the run commits whole or not at all.
var postgresDialect = dialect{
	begin: func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := checkCurrentSchema(ctx, conn); err != nil {
			return err
		}
		const lock = `SELECT pg_advisory_xact_lock(hashtextextended('` + MigrationsTable + `:' || current_schema(), 0))`
		if _, err := conn.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		return nil
	},
	// Columns as golang-migrate's PostgreSQL drivers make them.
	createTable:   `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)`,
	insertVersion: "INSERT INTO " + MigrationsTable + " (version, dirty) VALUES ($1, $2)",
	readVersion:   readPostgresVersion,
}

// checkCurrentSchema returns an error wrapping ErrNoSchema, naming the
// search_path, when none of its schemas exists.
func checkCurrentSchema(ctx context.Context, q querier) error {
	var (
		current    sql.NullString
		searchPath string
	)
	if err := q.QueryRowContext(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&current, &searchPath); err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	if !current.Valid {
		return fmt.Errorf("%w (search_path is %q): create it first, e.g. CREATE SCHEMA name", ErrNoSchema, searchPath)
	}
	return nil
}

// readPostgresVersion returns database.NilVersion when nothing was ever
// migrated in the connection's current schema.
func readPostgresVersion(ctx context.Context, q querier) (int, bool, error) {
	return readVersionRow(ctx, q,
		`SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1)`)
}
