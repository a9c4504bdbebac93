package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // and database/sql driver "pgx"

	"github.com/entitylock/entitylock/bench/internal/pgsql"
	"github.com/entitylock/entitylock/bench/internal/turns"
	"github.com/entitylock/entitylock/lock"
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

// interleave runs n operations of each of ops, one of each in turn, and
// records one row per op. Turns of one operation each let a burst of load
// on this shared machine fall on every row alike: with turns of n/20
// operations (a third of a second each), a burst of a second or two could
// land on one row's turns and move P6a by ±0.2 from one run to the next.
// The turns follow turns.Orders, so that each op follows each other op as
// often: an op runs faster after the seed's synchronous release, which
// leaves no WAL for it to flush, and in turns rotated (P6 until
// 2026-11-27) the floor followed the seed two turns in three and the lock
// API one.
func interleave(n int, ops ...func() error) ([]row, error) {
	rows := make([]row, len(ops))
	orders := turns.Orders(len(ops))
	for turn := range n {
		for _, i := range orders[turn%len(orders)] {
			t0 := time.Now()
			if err := ops[i](); err != nil {
				return nil, err
			}
			rows[i].record(time.Since(t0))
		}
	}
	return rows, nil
}

// P6: uncontended TryAcquire+Release pairs on PostgreSQL, the lock API
// against the seed's PostgreSQL SQL and against the floor, on one schema,
// in interleaved turns. All three go through pgx's own API on the
// connections of one pool, the Manager's (sql.Conn.Raw, as the lock
// package does); pgx prepares and caches each statement alike. One pool,
// not one for the Manager and another for the seed and the floor: a
// server process that served the call before runs the next one sooner
// than one that sat idle for two turns, and a pool of its own, idle two
// turns in three, cost the lock API about 3% of its pairs a second
// (BENCHMARKS.md, "Run of 2026-11-26/27 … P6 on one pool, in balanced
// turns").
func benchPostgres(ctx context.Context, o options, rep *report) error {
	_, m, done, err := openPostgres(ctx, o)
	if err != nil {
		rep.notes = append(rep.notes, "PostgreSQL rows skipped: "+err.Error())
		rep.ratio("P6a", "lock API vs seed SQL on PostgreSQL (ops/s ratio)", "P6-ours", "P6-seed", 1.2)
		return nil
	}
	defer done()
	s, err := m.Session("bench")
	if err != nil {
		return err
	}
	db := m.DB()
	for _, ddl := range []string{pgsql.SeedSchema, pgsql.FloorSchema} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	const entity, session = "entity::bench", "bench"
	rows, err := interleave(o.pairs,
		func() error {
			if _, err := s.TryAcquire(ctx, entity); err != nil {
				return err
			}
			_, err := s.Release(ctx, entity)
			return err
		},
		func() error {
			var ok bool
			err := onPgx(ctx, db, func(c *pgx.Conn) error {
				return c.QueryRow(ctx, pgsql.SeedGrant, entity, session, "120").Scan(&ok)
			})
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("seed refused an uncontended acquire")
			}
			return onPgx(ctx, db, func(c *pgx.Conn) error {
				_, err := c.Exec(ctx, pgsql.SeedRelease, entity, session)
				return err
			})
		},
		func() error {
			var token int64
			err := onPgx(ctx, db, func(c *pgx.Conn) error {
				return c.QueryRow(ctx, pgsql.FloorGrant, entity, session, int64(120_000)).Scan(&token)
			})
			if err != nil {
				return err
			}
			return onPgx(ctx, db, func(c *pgx.Conn) error {
				_, err := c.Exec(ctx, pgsql.FloorRelease, entity, session)
				return err
			})
		})
	if err != nil {
		return err
	}
	rows[0].id, rows[0].name, rows[0].note = "P6-ours", "lock API TryAcquire+Release (PostgreSQL)", "server clock, sequence token, fence, release notifies only listeners"
	rows[1].id, rows[1].name, rows[1].note = "P6-seed", "seed SQL on PostgreSQL (upsert with NOW() + interval, DELETE)", "no token"
	rows[2].id, rows[2].name, rows[2].note = "P6-floor", "floor: one upsert, one asynchronous release, by hand", "no fence, no notify, no bookkeeping"
	for _, r := range rows {
		rep.add(r)
	}
	rep.ratio("P6a", "lock API vs seed SQL on PostgreSQL (ops/s ratio)", "P6-ours", "P6-seed", 1.2)
	rep.ratio("P6c", "lock API vs the floor on PostgreSQL (ops/s ratio; informative)", "P6-ours", "P6-floor", 0)

	err = timeAcquireAll(ctx, o, rep, "P6", " (PostgreSQL)", "", func(string) (*lock.Manager, func(), error) {
		_, m, done, err := openPostgres(ctx, o)
		return m, done, err
	})
	if err != nil {
		return err
	}
	rep.ratio("P6b", "AcquireAll(100) vs 100 × Acquire on PostgreSQL", "P6-all", "P6-seq", 20)
	return nil
}

// onPgx runs fn on a connection of db through pgx's own API, as the lock
// package runs its statements.
func onPgx(ctx context.Context, db *sql.DB, fn func(c *pgx.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error { return fn(dc.(*stdlib.Conn).Conn()) })
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
