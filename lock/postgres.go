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

// keywordPassword finds a password (or sslpassword) setting of a
// keyword/value DSN, its value in group 2. Its spaces include \v, which pgx
// trims too.
var keywordPassword = regexp.MustCompile(`(?i)(\b[a-z]*password[\t\n\v\f\r ]*=[\t\n\v\f\r ]*)('(\\.|[^'])*'|[^\t\n\v\f\r ]+)`)

// secretParams are the URL query parameters pgx takes a password from.
var secretParams = []string{"password", "sslpassword"}

// redactPostgresDSN hides the passwords of a URL (its user information and
// its query) or of keyword/value settings. A URL whose password net/url
// might read otherwise than pgx does (see urlUserinfoUnclear) is not shown.
func redactPostgresDSN(dsn string) string {
	if _, ok := urlScheme(dsn); ok {
		u, err := url.Parse(dsn)
		if err != nil || urlUserinfoUnclear(dsn) {
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

// urlUserinfoUnclear reports whether net/url may end a URL's user
// information, and so its password, elsewhere than pgx does: pgx reads the
// password up to the first '@' before the first '/', and takes '?' and '#'
// in it literally, while net/url ends the authority at the first '/', '?'
// or '#' and takes the last '@' in it. They agree when the URL has no '#',
// and its first '@', if any, is its only one before the first '/' or '?'.
func urlUserinfoUnclear(dsn string) bool {
	_, rest, _ := strings.Cut(dsn, "://")
	if strings.Contains(rest, "#") {
		return true
	}
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return false
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	return at > end || strings.Count(rest[:end], "@") > 1
}

// strayURLAt reports whether a URL has an '@' before its query that is not
// the one ending its user information: a second one before the first '/'
// (pgx ends the user information at the first), or one in the path. Such
// an '@' is almost always part of an unescaped password, which pgx would
// then take for a host or a database name and show in its errors.
func strayURLAt(dsn string) bool {
	_, rest, _ := strings.Cut(dsn, "://")
	beforeQuery, _, _ := strings.Cut(rest, "?")
	at := strings.IndexByte(beforeQuery, '@')
	if at < 0 {
		return false
	}
	return strings.Count(beforeQuery, "@") > 1 || strings.Contains(beforeQuery[:at], "/")
}
