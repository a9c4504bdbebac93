package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/entitylock/entitylock/lock"
)

// The seed's statements as its project writes them for PostgreSQL: the
// same upsert, timed by NOW() + an interval, and DELETE to release.
const (
	seedPGSchema = `CREATE TABLE IF NOT EXISTS entity_advisory_locks (
    entity_name TEXT NOT NULL PRIMARY KEY,
    session_id  TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
)`
	seedPGTryAcquire = `INSERT INTO entity_advisory_locks (entity_name, session_id, acquired_at, expires_at)
             VALUES ($1, $2, NOW(), NOW() + ($3 || ' seconds')::interval)
             ON CONFLICT (entity_name) DO UPDATE SET
                 session_id  = excluded.session_id,
                 acquired_at = excluded.acquired_at,
                 expires_at  = excluded.expires_at
             WHERE
                 entity_advisory_locks.expires_at < NOW()
                 OR
                 entity_advisory_locks.session_id = excluded.session_id
             RETURNING (session_id = $2) AS acquired`
	seedPGRelease = `DELETE FROM entity_advisory_locks WHERE entity_name = $1 AND session_id = $2`
)

// pgSchema creates a fresh schema on the server o.pgDSN names and returns
// a DSN whose search_path is that schema, and a function that drops it.
func pgSchema(ctx context.Context, o options) (string, func(), error) {
	admin, err := sql.Open("pgx", o.pgDSN)
	if err != nil {
		return "", nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	name := "entitylock_bench_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.ExecContext(cctx, "CREATE SCHEMA "+name); err != nil {
		admin.Close()
		return "", nil, err
	}
	drop := func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		admin.Close()
	}
	u, err := url.Parse(o.pgDSN)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// openPostgres opens a Manager on a fresh schema; done closes it and drops
// the schema.
func openPostgres(ctx context.Context, o options) (dsn string, m *lock.Manager, done func(), err error) {
	dsn, drop, err := pgSchema(ctx, o)
	if err != nil {
		return "", nil, nil, err
	}
	if m, err = lock.Open(ctx, dsn); err != nil {
		drop()
		return "", nil, nil, err
	}
	return dsn, m, func() { m.Close(); drop() }, nil
}

// P6: uncontended TryAcquire+Release pairs on PostgreSQL, the lock API
// against the seed's PostgreSQL SQL, both through pgx's database/sql driver
// (which prepares and caches statements for both alike).
func benchPostgres(ctx context.Context, o options, rep *report) error {
	dsn, m, done, err := openPostgres(ctx, o)
	if err != nil {
		rep.notes = append(rep.notes, "PostgreSQL rows skipped: "+err.Error())
		rep.ratio("P6a", "lock API vs seed SQL on PostgreSQL (ops/s ratio)", "P6-ours", "P6-seed", 1.0)
		return nil
	}
	defer done()
	r, err := timeLockPairs(ctx, m, o.pairs)
	if err != nil {
		return err
	}
	r.id, r.name, r.note = "P6-ours", "lock API TryAcquire+Release (PostgreSQL)", "server clock, sequence token, NOTIFY on release"
	rep.add(r)

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, seedPGSchema); err != nil {
		return err
	}
	r, err = timeOps(o.pairs, func(int) error {
		var ok bool
		if err := db.QueryRowContext(ctx, seedPGTryAcquire, "entity::bench", "bench", "120").Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("seed refused an uncontended acquire")
		}
		_, err := db.ExecContext(ctx, seedPGRelease, "entity::bench", "bench")
		return err
	})
	if err != nil {
		return err
	}
	r.id, r.name, r.note = "P6-seed", "seed SQL on PostgreSQL (upsert with NOW() + interval, DELETE)", "no token"
	rep.add(r)
	rep.ratio("P6a", "lock API vs seed SQL on PostgreSQL (ops/s ratio)", "P6-ours", "P6-seed", 1.0)

	err = timeAcquireAll(ctx, o, rep, "P6", " (PostgreSQL)", func(string) (*lock.Manager, func(), error) {
		_, m, done, err := openPostgres(ctx, o)
		return m, done, err
	})
	if err != nil {
		return err
	}
	rep.ratio("P6b", "AcquireAll(100) vs 100 × Acquire on PostgreSQL", "P6-all", "P6-seq", 20)
	return nil
}

// P7: handoff across processes on PostgreSQL; the waiter learns of the
// release only through LISTEN/NOTIFY.
func benchPostgresHandoff(ctx context.Context, o options, rep *report) error {
	dsn, m, done, err := openPostgres(ctx, o)
	if err != nil {
		rep.notes = append(rep.notes, "PostgreSQL handoff skipped: "+err.Error())
		return nil
	}
	defer done()
	r, err := crossProcessHandoff(ctx, o, dsn, m)
	if err != nil {
		return err
	}
	r.id, r.name = "P7-ours", "handoff across processes, PostgreSQL (LISTEN/NOTIFY)"
	rep.add(r)
	rep.targets = append(rep.targets,
		target{id: "P7a", what: "cross-process handoff p50, PostgreSQL (ms)", got: ms(r.quantile(0.5))},
		target{id: "P7b", what: "cross-process handoff p99, PostgreSQL (ms)", got: ms(r.quantile(0.99))})
	return nil
}
