package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresIdleConns is how many idle connections Open keeps to PostgreSQL.
const postgresIdleConns = 16

// openPostgres opens a pgx database/sql pool on dsn and checks that the
// server answers. With access ReadOnly every transaction is read-only.
func openPostgres(ctx context.Context, dsn string, access Access) (*openedDB, error) {
	if scheme, ok := urlScheme(dsn); ok {
		if strayURLAt(dsn) {
			return nil, fmt.Errorf("%w: the database URL has an '@' that does not end its user information: "+
				"percent-encode '@', '/', '?' and '#' in a password (%%40, %%2F, %%3F, %%23)", ErrInvalidDSN)
		}
		dsn = scheme + dsn[len(scheme):] // pgx knows the scheme in lower case only
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, postgresParseError(dsn, err)
	}
	if access == ReadOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	health := new(connHealth)
	db := stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(health.shouldPing))
	// database/sql keeps 2 idle connections by default; a PostgreSQL
	// connection costs a server process and milliseconds to open, so busy
	// Managers would open and close them all the time.
	db.SetMaxIdleConns(postgresIdleConns)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &openedDB{db: db, health: health}, nil
}

// postgresParseError is pgx's refusal of dsn, wrapping ErrInvalidDSN. Of
// pgconn's message it keeps the reason alone: it shows the DSN hidden by a
// rougher rule than redactPostgresDSN's (which misses "password = secret"
// and a quoted password holding an escaped quote), and its inner error
// may quote words of the DSN. The DSN is shown as unparsedDSN shows it.
func postgresParseError(dsn string, err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: cannot parse %s", ErrInvalidDSN, unparsedDSN(dsn))
	}
	bare := *pe
	bare.ConnString = ""
	why := strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
	if inner := pe.Unwrap(); inner != nil {
		why = strings.TrimSuffix(why, " ("+inner.Error()+")")
	}
	return fmt.Errorf("%w: cannot parse %s: %s", ErrInvalidDSN, unparsedDSN(dsn), why)
}

// unparsedDSN is a DSN that pgx could not parse, fit for a message. In a
// keyword/value DSN that does not parse, nothing says where a password
// ends (an unquoted one with a space, say), so only what comes before the
// first password setting is shown; a URL is redacted as always.
func unparsedDSN(dsn string) string {
	if _, ok := urlScheme(dsn); ok {
		return redactPostgresDSN(dsn)
	}
	if i := keywordPassword.FindStringIndex(dsn); i != nil {
		if before := strings.TrimRight(dsn[:i[0]], "\t\n\v\f\r "); before != "" {
			return before + " …"
		}
		return "the DSN"
	}
	return dsn
}
