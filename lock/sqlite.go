package lock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"log/slog"
	"strings"

	"github.com/entitylock/entitylock/schema"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
)

// sqliteKind is SQLite, through github.com/ncruces/go-sqlite3 (no cgo): a
// database file shared by the processes of one machine. The Manager's
// clock times leases; releases by other processes are heard through the
// wake file beside it (watch_sqlite.go).
var sqliteKind = &engineKind{
	name:       "sqlite",
	dsnForms:   `an SQLite file path, a "file:" URI or ":memory:"`,
	claims:     sqliteClaims,
	ownsDriver: func(d driver.Driver) bool { _, ok := d.(*sqlitedriver.SQLite); return ok },
	driverPkg:  "github.com/ncruces/go-sqlite3/driver",
	open:       openSQLite,
	redact:     func(dsn string) string { return dsn }, // a path holds no password
	migrations: schema.SQLite,
	adapter: func(ctx context.Context, db *sql.DB, _ *openedDB, log *slog.Logger) (engine, error) {
		return newSQLiteEngine(ctx, db, log)
	},
}

// sqliteClaims takes a "file:" URI (in any letter case), ":memory:", and
// any other string that is neither a URL ("name://…") nor reads as
// keyword/value settings: a path whose first "=" comes before any "/"
// ("a=b.db") does, and is written "./a=b.db" or "file:a=b.db".
func sqliteClaims(dsn string) bool {
	if len(dsn) >= 5 && strings.EqualFold(dsn[:5], "file:") {
		return true
	}
	if _, ok := urlScheme(dsn); ok {
		return false
	}
	return strings.TrimSpace(dsn) != "" && !isKeywordDSN(dsn)
}
