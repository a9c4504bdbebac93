// Command pgbreakdown shows where the time of one uncontended grant and
// release goes on PostgreSQL (BENCHMARKS.md, "PostgreSQL pairs: where the time goes"): per
// statement latency for the lock API, its statements called directly
// through database/sql, the same without the fence trigger, the seed's SQL
// and the floor;
// socket writes (round trips) per call; WAL per statement (EXPLAIN
// ANALYZE, WAL, the commit record not counted); HOT updates. Every variant
// runs on its own schema of one database, in interleaved turns.
//
//	cd bench && go run ./pgbreakdown -n 5000
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/entitylock/entitylock/bench/internal/durations"
	"github.com/entitylock/entitylock/bench/internal/pgsql"
	"github.com/entitylock/entitylock/db/pgdb"
	"github.com/entitylock/entitylock/lock"
)

// writes counts the client's socket writes: each is one request the
// client then waits on, so in this sequential use, one round trip.
var writes atomic.Int64

type countingConn struct{ net.Conn }

func (c countingConn) Write(b []byte) (int, error) {
	writes.Add(1)
	return c.Conn.Write(b)
}

type call struct {
	lat    []time.Duration
	writes int64
}

type variant struct {
	name, note string
	grant, rel func(ctx context.Context) error
	// pair runs the variant's grant and release on q, for EXPLAIN.
	pair         func(ctx context.Context, q dbtx)
	db           *sql.DB
	grants, rels call
}

func main() {
	dsn := flag.String("postgres", envOr("ENTITYLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server")
	n := flag.Int("n", 5000, "pairs per variant")
	flag.Parse()
	if err := run(context.Background(), *dsn, *n); err != nil {
		fmt.Fprintln(os.Stderr, "pgbreakdown:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, base string, n int) error {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	prefix := "entitylock_breakdown_" + strings.ToLower(rand.Text()[:8])
	var schemas []string
	defer func() {
		for _, s := range schemas {
			if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+s+" CASCADE"); err != nil {
				fmt.Fprintf(os.Stderr, "pgbreakdown: drop schema %s: %v\n", s, err)
			}
		}
	}()
	// open makes a schema and a pool on it whose sockets count writes.
	open := func(name string) (*sql.DB, error) {
		s := prefix + "_" + strings.ReplaceAll(name, "-", "_")
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+s); err != nil {
			return nil, err
		}
		schemas = append(schemas, s)
		u, err := url.Parse(base)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", s)
		u.RawQuery = q.Encode()
		cfg, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			return countingConn{c}, err
		}
		return stdlib.OpenDB(*cfg), nil
	}
	const entity, session = "entity::bench", "bench"
	var vs []*variant

	apiDB, err := open("api")
	if err != nil {
		return err
	}
	defer apiDB.Close()
	m, err := lock.New(ctx, apiDB)
	if err != nil {
		return err
	}
	defer m.Close()
	s, _ := m.Session(session)
	vs = append(vs, &variant{name: "lock API", note: "TryAcquire, Release",
		grant: func(ctx context.Context) error { _, err := s.TryAcquire(ctx, entity); return err },
		rel:   func(ctx context.Context) error { _, err := s.Release(ctx, entity); return err }})

	// ours runs the lock package's statements directly on a schema of its
	// own, after the extra DDL.
	ours := func(name, note string, ddl ...string) error {
		db, err := open(name)
		if err != nil {
			return err
		}
		m, err := lock.New(ctx, db) // migrates
		if err != nil {
			return err
		}
		m.Close()
		for _, d := range ddl {
			if _, err := db.ExecContext(ctx, d); err != nil {
				return err
			}
		}
		grant := func(ctx context.Context, q dbtx) error {
			_, err := pgdb.New(onSQL{q}).Acquire(ctx, pgdb.AcquireParams{Entity: entity, SessionID: session, TtlMs: 120_000})
			return err
		}
		release := func(ctx context.Context, q dbtx) error {
			_, err := pgdb.New(onSQL{q}).Release(ctx, pgdb.ReleaseParams{Entity: entity, SessionID: session})
			return err
		}
		vs = append(vs, &variant{name: name, note: note,
			grant: func(ctx context.Context) error { return grant(ctx, db) },
			rel:   func(ctx context.Context) error { return release(ctx, db) },
			pair:  func(ctx context.Context, q dbtx) { grant(ctx, q); release(ctx, q) }, db: db})
		return nil
	}
	if err := ours("statements", "Acquire, Release (schema version 3), through database/sql"); err != nil {
		return err
	}
	if err := ours("no-triggers", "the same, no fence trigger",
		"DROP TRIGGER entitylock_leases_inserted ON entitylock_leases",
		"DROP TRIGGER entitylock_leases_deleted ON entitylock_leases"); err != nil {
		return err
	}

	seedDB, err := open("seed")
	if err != nil {
		return err
	}
	defer seedDB.Close()
	for _, d := range []string{pgsql.SeedSchema, pgsql.FloorSchema} {
		if _, err := seedDB.ExecContext(ctx, d); err != nil {
			return err
		}
	}
	// handWritten adds a variant of two hand-written statements.
	handWritten := func(name, note, grant, release string, ttl any) {
		g := func(ctx context.Context, q dbtx) error {
			var ignored any
			return q.QueryRowContext(ctx, grant, entity, session, ttl).Scan(&ignored)
		}
		r := func(ctx context.Context, q dbtx) error {
			_, err := q.ExecContext(ctx, release, entity, session)
			return err
		}
		vs = append(vs, &variant{name: name, note: note,
			grant: func(ctx context.Context) error { return g(ctx, seedDB) },
			rel:   func(ctx context.Context) error { return r(ctx, seedDB) },
			pair:  func(ctx context.Context, q dbtx) { g(ctx, q); r(ctx, q) }, db: seedDB})
	}
	handWritten("seed", "upsert, DELETE", pgsql.SeedGrant, pgsql.SeedRelease, "120")
	handWritten("floor", "one upsert, one asynchronous release", pgsql.FloorGrant, pgsql.FloorRelease, int64(120_000))

	// Warm up: every statement prepared on the connection it will use.
	for range 50 {
		for _, v := range vs {
			if err := v.grant(ctx); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if err := v.rel(ctx); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}
	timed := func(c *call, f func(context.Context) error) error {
		w := writes.Load()
		t0 := time.Now()
		if err := f(ctx); err != nil {
			return err
		}
		c.lat = append(c.lat, time.Since(t0))
		c.writes += writes.Load() - w
		return nil
	}
	for i := range n {
		for k := range vs {
			v := vs[(i+k)%len(vs)]
			if err := timed(&v.grants, v.grant); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if err := timed(&v.rels, v.rel); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}

	fmt.Printf("pgbreakdown: %d pairs per variant, interleaved, %s\n\n", n, time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tGRANT P50\tGRANT MEAN\tRELEASE P50\tRELEASE MEAN\tPAIR MEAN\tWRITES/PAIR\tWHAT")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\n", v.name,
			durations.Micros(durations.Quantile(v.grants.lat, .5)), durations.Micros(durations.Mean(v.grants.lat)), durations.Micros(durations.Quantile(v.rels.lat, .5)), durations.Micros(durations.Mean(v.rels.lat)),
			durations.Micros(durations.Mean(v.grants.lat)+durations.Mean(v.rels.lat)), float64(v.grants.writes+v.rels.writes)/float64(n), v.note)
	}
	tw.Flush()

	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tGRANT WAL RECORDS\tGRANT WAL BYTES\tRELEASE WAL RECORDS\tRELEASE WAL BYTES\t(mean of 50 EXPLAIN ANALYZE pairs)")
	for _, v := range vs {
		if v.pair == nil {
			continue
		}
		e := &explainer{db: v.db}
		for range 50 {
			v.pair(ctx, e)
		}
		if e.err != nil {
			return fmt.Errorf("%s: explain: %w", v.name, e.err)
		}
		if len(e.recs) != 100 {
			return fmt.Errorf("%s: explained %d statements, want 100", v.name, len(e.recs))
		}
		var recs, bytes [2]float64
		for i := range e.recs {
			recs[i%2] += e.recs[i] / 50
			bytes[i%2] += e.bytes[i] / 50
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.2f\t%.0f\t\n", v.name, recs[0], bytes[0], recs[1], bytes[1])
	}
	tw.Flush()

	time.Sleep(1500 * time.Millisecond) // table statistics reach pg_stat within a second
	fmt.Println()
	rows, err := admin.QueryContext(ctx, `SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
		FROM pg_stat_user_tables WHERE schemaname LIKE $1 AND relname IN ('entitylock_leases', 'entity_advisory_locks', 'floor_leases')
		ORDER BY schemaname, relname`, prefix+"%")
	if err != nil {
		return err
	}
	defer rows.Close()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tINSERTS\tUPDATES\tHOT UPDATES\tDELETES")
	for rows.Next() {
		var sch, rel string
		var ins, upd, hot, del int64
		if err := rows.Scan(&sch, &rel, &ins, &upd, &hot, &del); err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s.%s\t%d\t%d\t%d\t%d\n", strings.TrimPrefix(sch, prefix+"_"), rel, ins, upd, hot, del)
	}
	tw.Flush()
	return rows.Err()
}

// onSQL runs the generated statements, written for pgx's own API, through
// database/sql, so that the explainer can see them. Acquire and Release
// use QueryRow and Exec only.
type onSQL struct{ q dbtx }

func (o onSQL) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return o.q.QueryRowContext(ctx, query, args...)
}

func (o onSQL) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	r, err := o.q.ExecContext(ctx, query, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	n, err := r.RowsAffected()
	return pgconn.NewCommandTag(fmt.Sprintf("UPDATE %d", n)), err
}

func (o onSQL) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("onSQL: Query not supported")
}

// dbtx is what sqlc's queries and the hand-written variants run on.
type dbtx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

var walLine = regexp.MustCompile(`WAL: records=(\d+)(?: fpi=\d+)? bytes=(\d+)`)

// explainer runs each statement under EXPLAIN (ANALYZE, WAL), which
// executes it, and records the WAL records and bytes of its top plan node.
// Callers see no rows.
type explainer struct {
	db          *sql.DB
	recs, bytes []float64
	err         error
}

func (e *explainer) explain(ctx context.Context, query string, args []any) {
	rows, err := e.db.QueryContext(ctx, "EXPLAIN (ANALYZE, WAL, COSTS OFF) "+query, args...)
	if err != nil {
		e.err = errors.Join(e.err, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			e.err = errors.Join(e.err, err)
			return
		}
		if m := walLine.FindStringSubmatch(line); m != nil {
			var r, b float64
			fmt.Sscan(m[1], &r)
			fmt.Sscan(m[2], &b)
			e.recs, e.bytes = append(e.recs, r), append(e.bytes, b)
			return
		}
	}
	e.recs, e.bytes = append(e.recs, 0), append(e.bytes, 0) // wrote nothing
}

func (e *explainer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	e.explain(ctx, query, args)
	return driver.RowsAffected(0), nil
}

func (e *explainer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	e.explain(ctx, query, args)
	return e.db.QueryRowContext(ctx, "SELECT 1 WHERE false")
}

func (e *explainer) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	return nil, errors.New("explainer: not used")
}

func (e *explainer) PrepareContext(context.Context, string) (*sql.Stmt, error) {
	return nil, errors.New("explainer: not used")
}
