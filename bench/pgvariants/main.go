// Command pgvariants times variants of the lock package's PostgreSQL grant
// and release against each other, the seed's SQL and the floor
// (BENCHMARKS.md, "PostgreSQL pairs"): each variant is a schema made by
// the lock package's migrations, some DDL, and a grant and a release
// statement, run through pgx's database/sql driver or pgx's own API one
// pair at a time, in a random order each round, so that all see the same
// stretches of a busy machine. The statements are those of queries/postgres (db/pgdb)
// or changed from them; "v2" variants put schema version 2's CHECKs and
// release trigger back; the others change one thing of "v3-pgx", the
// library as it is.
//
//	cd bench && go run ./pgvariants -n 3000
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/stdlib" // and database/sql driver "pgx"

	"github.com/jackc/pgx/v5"

	"github.com/entitylock/entitylock/bench/internal/durations"
	"github.com/entitylock/entitylock/bench/internal/pgsql"
	"github.com/entitylock/entitylock/db/pgdb"
	"github.com/entitylock/entitylock/lock"
)

// grantNow is Acquire as queries/postgres has it.
const grantNow = pgdb.Acquire

// grantValues is grantNow with its row from VALUES instead of a subquery.
var grantValues = strings.Replace(grantNow, `SELECT $1::text, $2::text, nextval('entitylock_tokens'), c.now, c.now + $3::bigint, false
FROM (SELECT entitylock_clock($4) AS now) AS c`, `VALUES ($1::text, $2::text, nextval('entitylock_tokens'), entitylock_clock($4), entitylock_clock($4) + $3::bigint, false)`, 1)

// grantToken is grantNow returning the token alone.
var grantToken = strings.Replace(grantNow, "RETURNING l.token, l.acquired_at, l.expires_at, l.reclaimed", "RETURNING l.token", 1)

// grantNoCase is the floor's upsert on the lock package's table.
const grantNoCase = `INSERT INTO entitylock_leases AS l (entity, session_id, token, acquired_at, expires_at, reclaimed)
VALUES ($1, $2, nextval('entitylock_tokens'), 0, coalesce($4::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) + $3, false)
ON CONFLICT (entity) DO UPDATE SET
    token = CASE WHEN l.session_id = excluded.session_id AND l.expires_at > excluded.expires_at - $3
        THEN l.token ELSE excluded.token END,
    session_id = excluded.session_id,
    expires_at = excluded.expires_at
WHERE l.expires_at <= excluded.expires_at - $3 OR l.session_id = excluded.session_id
RETURNING l.token, l.acquired_at, l.expires_at, l.reclaimed`

// releaseNotifying is Release as queries/postgres has it (version 3: it
// notifies from its RETURNING clause); releaseNow is version 2's, the same
// without that clause.
const releaseNotifying = pgdb.Release

var releaseNow, _, _ = strings.Cut(releaseNotifying, "\nRETURNING")

// backToV2 is the DDL that puts version 2's CHECKs and release trigger back:
// the down migration of version 3, read from the source tree (run from
// bench/).
const backToV2 = "../schema/postgres/000003_lean_writes.down.sql"

// noFenceTrigger is the DDL of the variant without the fence trigger.
const noFenceTrigger = `DROP TRIGGER entitylock_leases_inserted ON entitylock_leases`

type variant struct {
	name, note     string
	table          string // "lock" (the lock package's schema), "seed" or "floor"
	ddl            []string
	grant, release string
	ddlFile        string // DDL read from this file, before ddl
	native         bool   // run through pgx's own API (sql.Conn.Raw), not database/sql
	direct         bool   // native, on one pgx.Conn of its own instead of the pool's
	tokenOnly      bool   // the grant returns the token alone
	conn           *pgx.Conn
	db             *sql.DB
	grants, rels   []time.Duration
	// pid is the server process that runs v's statements; srv, the CPU
	// time it spent on them, read from /proc when the server runs on
	// this machine (srvOK).
	pid   int
	srv   time.Duration
	srvOK bool
}

func variants() []*variant {
	return []*variant{
		{name: "v2-sql", table: "lock", ddlFile: backToV2, grant: grantNow, release: releaseNow, note: "schema version 2 (CHECKs, release trigger), database/sql"},
		{name: "v2-pgx", table: "lock", native: true, ddlFile: backToV2, grant: grantNow, release: releaseNow, note: "schema version 2, pgx's own API"},
		{name: "v3-sql", table: "lock", grant: grantNow, release: releaseNotifying, note: "schema version 3 (no CHECK, releases notify), database/sql"},
		{name: "v3-pgx", table: "lock", native: true, grant: grantNow, release: releaseNotifying, note: "schema version 3, pgx's own API (the library since version 3)"},
		{name: "v3-clock-pgx", table: "lock", native: true, grant: strings.Replace(grantNow, "entitylock_clock($4)", "coalesce($4, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)", 1), release: releaseNotifying, note: "v3-pgx, the clock function written out"},
		{name: "v3-values-pgx", table: "lock", native: true, grant: grantValues, release: releaseNotifying, note: "v3-pgx, the grant's row from VALUES (the clock read twice)"},
		{name: "v3-floorgrant-pgx", table: "lock", native: true, grant: grantNoCase, release: releaseNotifying, note: "v3-pgx, the floor's grant shape on our table"},
		{name: "v3-conn-pgx", table: "lock", native: true, direct: true, grant: grantNow, release: releaseNotifying, note: "v3-pgx on one pgx.Conn, no pool"},
		{name: "v3-ret1-pgx", table: "lock", native: true, grant: grantToken, tokenOnly: true, release: releaseNotifying, note: "v3-pgx, the grant returning the token alone (not enough for the library: the cost of its other columns)"},
		{name: "v3-silent-pgx", table: "lock", native: true, grant: grantNow, release: releaseNow, note: "v3-pgx, the release not notifying (no registry test)"},
		{name: "v3-nofence-pgx", table: "lock", native: true, ddl: []string{noFenceTrigger}, grant: grantNow, release: releaseNotifying, note: "v3-pgx without the fence trigger"},
		{name: "seed", table: "seed", grant: pgsql.SeedGrant, release: pgsql.SeedRelease, note: "upsert, DELETE"},
		{name: "floor", table: "floor", grant: pgsql.FloorGrant, release: pgsql.FloorRelease, note: "one upsert, one asynchronous release"},
	}
}

func main() {
	dsn := flag.String("postgres", envOr("ENTITYLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server")
	n := flag.Int("n", 3000, "pairs per variant")
	only := flag.String("only", "", "comma-separated variant names (default: all)")
	flag.Parse()
	if err := run(context.Background(), *dsn, *n, *only); err != nil {
		fmt.Fprintln(os.Stderr, "pgvariants:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, base string, n int, only string) error {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	prefix := "entitylock_variants_" + strings.ToLower(rand.Text()[:8])
	var vs []*variant
	defer func() {
		for _, v := range vs {
			if v.db != nil {
				v.db.Close()
			}
			if v.conn != nil {
				v.conn.Close(context.Background())
			}
			if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+schemaName(prefix, v)+" CASCADE"); err != nil {
				fmt.Fprintf(os.Stderr, "pgvariants: drop schema: %v\n", err)
			}
		}
	}()
	for _, v := range variants() {
		if only != "" && !slices.Contains(strings.Split(only, ","), v.name) {
			continue
		}
		vs = append(vs, v)
		if err := v.setUp(ctx, admin, base, prefix); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	for range 50 { // every statement prepared on its connection
		for _, v := range vs {
			if _, _, err := v.pair(ctx); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}
	// Each round takes the variants in a new random order (the same
	// orders from run to run), so that each follows each other about as
	// often: a pair runs faster after the seed's synchronous release, which
	// leaves no WAL for it to flush, and in rounds rotated the floor,
	// listed after the seed, followed it in all rounds but one in every
	// len(vs).
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := range n {
		for _, k := range rng.Perm(len(vs)) {
			v := vs[k]
			cpu0, ok0 := serverCPU(v.pid)
			g, r, err := v.pair(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			cpu1, ok1 := serverCPU(v.pid)
			v.grants, v.rels = append(v.grants, g), append(v.rels, r)
			v.srv += cpu1 - cpu0
			v.srvOK = ok0 && ok1 && (i == 0 || v.srvOK)
		}
	}
	fmt.Printf("pgvariants: %d pairs per variant, one pair at a time, the variants in a random order each round, %s\n\n", n, time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-15s %9s %10s %11s %12s %9s %11s  %s\n", "VARIANT", "GRANT P50", "GRANT MEAN", "RELEASE P50", "RELEASE MEAN", "PAIR MEAN", "SERVER CPU", "WHAT")
	for _, v := range vs {
		srv := "-"
		if v.srvOK {
			srv = durations.Micros(v.srv / time.Duration(n))
		}
		fmt.Printf("%-15s %9s %10s %11s %12s %9s %11s  %s\n", v.name, durations.Micros(durations.Quantile(v.grants, .5)), durations.Micros(durations.Mean(v.grants)),
			durations.Micros(durations.Quantile(v.rels, .5)), durations.Micros(durations.Mean(v.rels)), durations.Micros(durations.Mean(v.grants)+durations.Mean(v.rels)), srv, v.note)
	}
	fmt.Println("\nSERVER CPU: the time the variant's server process ran on a CPU, per pair (/proc/<pid>/schedstat; \"-\" when the server is not on this machine).\nThe WAL writer's work for asynchronous commits (the library's and the floor's releases) is not in it; the seed flushes its own.")
	return nil
}

// serverCPU reads the CPU time server process pid has run, when it runs on
// this machine and /proc shows it.
func serverCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err == nil
}

func schemaName(prefix string, v *variant) string {
	return prefix + "_" + strings.ReplaceAll(v.name, "-", "_")
}

// setUp makes v's schema, its tables and a pool on it.
func (v *variant) setUp(ctx context.Context, admin *sql.DB, base, prefix string) error {
	s := schemaName(prefix, v)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+s); err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("search_path", s)
	u.RawQuery = q.Encode()
	if v.db, err = sql.Open("pgx", u.String()); err != nil {
		return err
	}
	// One connection, so that one server process runs every statement
	// (the pairs run one at a time: a pool would hand out the same one).
	v.db.SetMaxOpenConns(1)
	if v.direct {
		if v.conn, err = pgx.Connect(ctx, u.String()); err != nil {
			return err
		}
		v.pid = int(v.conn.PgConn().PID())
	} else if err := v.db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&v.pid); err != nil {
		return err
	}
	switch v.table {
	case "lock":
		m, err := lock.New(ctx, v.db) // migrates
		if err != nil {
			return err
		}
		m.Close()
	case "seed":
		v.ddl = append([]string{pgsql.SeedSchema}, v.ddl...)
	case "floor":
		v.ddl = append([]string{pgsql.FloorSchema}, v.ddl...)
	}
	if v.ddlFile != "" {
		b, err := os.ReadFile(v.ddlFile)
		if err != nil {
			return fmt.Errorf("run from bench/: %w", err)
		}
		v.ddl = append([]string{string(b)}, v.ddl...)
	}
	for _, d := range v.ddl {
		if _, err := v.db.ExecContext(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

const entity, session = "entity::bench", "bench"

// pair grants and releases the entity, and checks that each did.
func (v *variant) pair(ctx context.Context) (grant, release time.Duration, err error) {
	args := []any{entity, session, int64(120_000), sql.NullInt64{}}
	switch v.table {
	case "seed":
		args = []any{entity, session, "120"}
	case "floor":
		args = args[:3]
	}
	if v.native {
		return v.pairNative(ctx, args)
	}
	t0 := time.Now()
	if err := scanOne(ctx, v.db, v.grant, args...); err != nil {
		return 0, 0, fmt.Errorf("grant: %w", err)
	}
	t1 := time.Now()
	res, err := v.db.ExecContext(ctx, v.release, entity, session)
	if err != nil {
		return 0, 0, fmt.Errorf("release: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return 0, 0, fmt.Errorf("release: %d rows, %v; want 1", n, err)
	}
	return t1.Sub(t0), time.Since(t1), nil
}

// scanOne runs query and reads every column of its one row.
func scanOne(ctx context.Context, db *sql.DB, query string, args ...any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	dst := make([]any, len(cols))
	for i := range dst {
		dst[i] = new(any)
	}
	got := 0
	for rows.Next() {
		got++
		if err := rows.Scan(dst...); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got != 1 {
		return errors.New("no row: not granted")
	}
	return nil
}

// pairNative is pair through pgx's own API, each statement on a connection
// taken from the pool for it, as an engine built on sql.Conn.Raw would.
func (v *variant) pairNative(ctx context.Context, args []any) (grant, release time.Duration, err error) {
	raw := func(f func(c *pgx.Conn) error) error {
		if v.direct {
			return f(v.conn)
		}
		c, err := v.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Raw(func(dc any) error { return f(dc.(*stdlib.Conn).Conn()) })
	}
	t0 := time.Now()
	err = raw(func(c *pgx.Conn) error {
		var token, acquired, expires int64
		var reclaimed bool
		dst := []any{&token, &acquired, &expires, &reclaimed}
		if v.tokenOnly {
			dst = dst[:1]
		}
		return c.QueryRow(ctx, v.grant, args...).Scan(dst...)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("grant: %w", err)
	}
	t1 := time.Now()
	err = raw(func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, v.release, entity, session)
		if err == nil && tag.RowsAffected() != 1 {
			err = fmt.Errorf("%d rows; want 1", tag.RowsAffected())
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("release: %w", err)
	}
	return t1.Sub(t0), time.Since(t1), nil
}
