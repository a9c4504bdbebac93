package lock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"github.com/entitylock/entitylock/schema"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresKind is PostgreSQL, through github.com/jackc/pgx/v5/stdlib: one
// server shared by processes on many machines. The server's clock times
// leases; LISTEN/NOTIFY carries releases to other processes
// (listen_postgres.go).
var postgresKind = &engineKind{
	name:        "postgres",
	dsnForms:    `a postgres:// or postgresql:// URL, or a keyword/value DSN ("host=… dbname=…")`,
	claims:      postgresClaims,
	ownsDriver:  func(d driver.Driver) bool { _, ok := d.(*stdlib.Driver); return ok },
	driverPkg:   "github.com/jackc/pgx/v5/stdlib",
	open:        openPostgres,
	redact:      redactPostgresDSN,
	migrations:  schema.Postgres,
	serverClock: true,
	adapter: func(_ context.Context, db *sql.DB, o *openedDB, _ *slog.Logger) (engine, error) {
		e := newPostgresEngine(db)
		if o != nil {
			e.health = o.health
		}
		return e, nil
	},
}

// postgresClaims takes what pgx's ParseConfig takes: a postgres:// or
// postgresql:// URL (the scheme in any letter case), or a keyword/value
// DSN whose first word is a keyword.
func postgresClaims(dsn string) bool {
	if scheme, ok := urlScheme(dsn); ok {
		return scheme == "postgres" || scheme == "postgresql"
	}
	return isKeywordDSN(dsn)
}

var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(\\.|[^'])*'|\S+)`) // password and sslpassword

// secretParams are the URL query parameters pgx takes a password from.
var secretParams = []string{"password", "sslpassword"}

// redactPostgresDSN hides the passwords of a URL (its user information and
// its query) or of keyword/value settings.
func redactPostgresDSN(dsn string) string {
	if _, ok := urlScheme(dsn); ok {
		u, err := url.Parse(dsn)
		if err != nil {
			return "the database URL"
		}
		q := u.Query()
		for name := range q {
			for _, secret := range secretParams {
				if strings.EqualFold(name, secret) {
					q[name] = []string{"xxxxx"}
				}
			}
		}
		u.RawQuery = q.Encode()
		return u.Redacted()
	}
	return keywordPassword.ReplaceAllString(dsn, "${1}xxxxx")
}
