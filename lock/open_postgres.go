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

// postgresParseError is pgx's refusal of dsn, wrapping ErrInvalidDSN, with
// dsn shown as redactPostgresDSN hides it: pgconn's own message hides
// passwords by a rougher rule, which misses "password = secret" and a
// quoted password holding an escaped quote. Of pgconn's message it keeps
// what follows the DSN.
func postgresParseError(dsn string, err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%w: cannot parse %s", ErrInvalidDSN, redactPostgresDSN(dsn))
	}
	bare := *pe
	bare.ConnString = ""
	why := strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
	return fmt.Errorf("%w: cannot parse %s: %s", ErrInvalidDSN, redactPostgresDSN(dsn), why)
}
