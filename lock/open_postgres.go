package lock

import (
	"context"
	"fmt"
	"time"

	"github.com/entitylock/entitylock/schema"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresIdleConns is how many idle connections Open keeps to PostgreSQL.
const postgresIdleConns = 16

// openPostgres opens a pgx database/sql pool on url.
func openPostgres(ctx context.Context, url string, opts []Option) (*Manager, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgconn's message quotes the URL with its password redacted.
		return nil, opError("open", "", fmt.Errorf("%w: %w", ErrInvalidOption, err))
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
		return nil, opError("open", "", err)
	}
	m, err := newManager(ctx, db, schema.Postgres, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	m.ownDB = true
	m.eng.(*postgresEngine).health = health
	return m, nil
}
