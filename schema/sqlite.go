package schema

import (
	"context"
	"database/sql"
	"fmt"
)

// SQLite is the schema of SQLite databases opened with
// github.com/ncruces/go-sqlite3/driver.
var SQLite = &Migrations{dir: "sqlite", d: sqliteDialect}

// sqliteDialect runs migrations in one BEGIN IMMEDIATE transaction: holding
// SQLite's write lock for the whole run is what serializes processes.
var sqliteDialect = dialect{
	begin: func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("begin immediate: %w", err)
		}
		return nil
	},
	createTable: `CREATE TABLE IF NOT EXISTS ` + MigrationsTable +
		` (version INTEGER NOT NULL PRIMARY KEY, dirty INTEGER NOT NULL) STRICT`,
	insertVersion: "INSERT INTO " + MigrationsTable + " (version, dirty) VALUES (?, ?)",
	readVersion:   readSQLiteVersion,
}

// readSQLiteVersion returns database.NilVersion when nothing was ever
// migrated.
func readSQLiteVersion(ctx context.Context, q querier) (int, bool, error) {
	return readVersionRow(ctx, q,
		`SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)`)
}
