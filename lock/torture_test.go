package lock_test

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
	"github.com/entitylock/entitylock/schema"
)

// long reports whether the long versions run (make torture).
func long() bool { return os.Getenv("ENTITYLOCK_TORTURE") == "long" }

// scale picks the CI or the long figure.
func scale[T any](ci, long_ T) T {
	if long() {
		return long_
	}
	return ci
}

// engines runs test once per engine: on SQLite always, on PostgreSQL when
// $ENTITYLOCK_POSTGRES_DSN is set (skipped, saying so, otherwise).
func engines(t *testing.T, test func(t *testing.T, b locktest.Backend)) {
	t.Run("sqlite", func(t *testing.T) { test(t, locktest.SQLite()) })
	t.Run("postgres", func(t *testing.T) { test(t, locktest.Postgres(t)) })
}

// newTortureDB makes a database with the lock schema and the torture
// tables, with counters for hot entities, and returns its DSN and a raw
// handle on it.
func newTortureDB(t *testing.T, b locktest.Backend, hot int) (string, *sql.DB) {
	t.Helper()
	dsn := b.NewDSN(t)
	m := mustOpenPath(t, dsn)
	for _, q := range tortureSchema {
		if _, err := m.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range hot {
		if _, err := m.DB().Exec(`INSERT INTO torture_counters VALUES ($1, 0)`, fmt.Sprintf("hot::%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, testkit.DB(t, dsn)
}

type logRow struct {
	entity, session string
	token           int64
	enter, exit     int64
}

// checkTorture is the independent checker: it reads the application tables
// only. Counters must equal the logged grants; per entity, tokens strictly
// increase in grant order and no two hold intervals overlap; no worker saw
// an error. It returns the number of grants.
func checkTorture(t *testing.T, db *sql.DB) int {
	t.Helper()
	errs := testkit.QueryStrings(t, db, `SELECT session || ': ' || err FROM torture_errors`)
	if len(errs) > 0 {
		t.Errorf("%d worker errors (BUSY, LOCKED or other), first: %s", len(errs), errs[0])
	}

	var mismatch int
	if err := db.QueryRow(`SELECT count(*) FROM torture_counters c
		WHERE c.n <> (SELECT count(*) FROM torture_log l WHERE l.entity = c.entity)`).Scan(&mismatch); err != nil {
		t.Fatal(err)
	}
	if mismatch > 0 {
		t.Errorf("%d counters differ from their logged grants: lost updates", mismatch)
	}

	rows, err := db.Query(`SELECT entity, session, token, enter_ns, exit_ns FROM torture_log ORDER BY entity, enter_ns`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var log []logRow
	for rows.Next() {
		var r logRow
		if err := rows.Scan(&r.entity, &r.session, &r.token, &r.enter, &r.exit); err != nil {
			t.Fatal(err)
		}
		log = append(log, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	violations := 0
	for i := 1; i < len(log); i++ {
		prev, cur := log[i-1], log[i]
		if prev.entity != cur.entity {
			continue
		}
		if cur.token <= prev.token {
			violations++
			t.Errorf("%s: token %d (%s) after %d (%s)", cur.entity, cur.token, cur.session, prev.token, prev.session)
		}
		if cur.enter < prev.exit {
			violations++
			t.Errorf("%s: %s entered %v before %s left: two holders at once", cur.entity, cur.session,
				time.Duration(prev.exit-cur.enter), prev.session)
		}
	}
	t.Logf("checked %d grants: %d violations, most holders of one entity at once: %d", len(log), violations, maxConcurrent(log))
	return len(log)
}

// maxConcurrent sweeps the hold intervals of each entity and returns the
// largest number that were open at one instant.
func maxConcurrent(log []logRow) int {
	type edge struct {
		at    int64
		delta int
	}
	byEntity := map[string][]edge{}
	for _, r := range log {
		byEntity[r.entity] = append(byEntity[r.entity], edge{r.enter, +1}, edge{r.exit, -1})
	}
	most := 0
	for _, edges := range byEntity {
		// At equal instants, leaving sorts before entering: a handoff at the
		// same nanosecond is not an overlap.
		slices.SortFunc(edges, func(a, b edge) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			return a.delta - b.delta
		})
		open := 0
		for _, e := range edges {
			open += e.delta
			most = max(most, open)
		}
	}
	return most
}

// Several processes × several goroutines, each with its own session,
// contend for a few hot entities in one database (a WAL file, or a
// PostgreSQL schema).
func TestTortureMutualExclusion(t *testing.T) { engines(t, tortureMutualExclusion) }

func tortureMutualExclusion(t *testing.T, b locktest.Backend) {
	procs, goroutines, hot := scale(3, 6), scale(4, 8), 3
	duration := scale(3*time.Second, 60*time.Second)
	path, db := newTortureDB(t, b, hot)
	until := time.Now().Add(duration)

	cmds := make([]interface{ Wait() error }, procs)
	outs := make([]*strings.Builder, procs)
	for p := range procs {
		cmd := startWorker(t, "torture",
			"ENTITYLOCK_DB="+path, fmt.Sprintf("ENTITYLOCK_SESSION_PREFIX=p%d", p),
			fmt.Sprintf("ENTITYLOCK_GOROUTINES=%d", goroutines), fmt.Sprintf("ENTITYLOCK_HOT=%d", hot),
			fmt.Sprintf("ENTITYLOCK_UNTIL=%d", until.UnixNano()))
		outs[p] = &strings.Builder{}
		cmd.Stdout = outs[p]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[p] = cmd
	}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v", p, err)
		}
	}
	grants := checkTorture(t, db)
	if grants < procs*goroutines {
		t.Errorf("only %d grants in %v: the workers made no progress", grants, duration)
	}
	t.Logf("%d processes × %d goroutines, %d hot entities, %v: %d grants", procs, goroutines, hot, duration, grants)
	logFairness(t, outs)
}

// logFairness reports, from the workers' last lines ("waits <grants> <p50
// µs> <p99 µs> <max µs>"), each process's grants and waits, and the spread
// between processes: how unevenly they are served.
func logFairness(t *testing.T, outs []*strings.Builder) {
	t.Helper()
	var minP50, maxP50, minN, maxN int64 = -1, 0, -1, 0
	for p, out := range outs {
		var n, p50, p99, most int64
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if _, err := fmt.Sscanf(lines[len(lines)-1], "waits %d %d %d %d", &n, &p50, &p99, &most); err != nil {
			t.Errorf("worker %d: no waits line in %q", p, out.String())
			return
		}
		t.Logf("process %d: %d grants, wait for a grant p50 %v, p99 %v, max %v", p, n,
			time.Duration(p50)*time.Microsecond, time.Duration(p99)*time.Microsecond, time.Duration(most)*time.Microsecond)
		if minP50 < 0 || p50 < minP50 {
			minP50 = p50
		}
		if minN < 0 || n < minN {
			minN = n
		}
		maxP50, maxN = max(maxP50, p50), max(maxN, n)
	}
	if minN > 0 && minP50 > 0 {
		t.Logf("spread between processes: grants max/min %.2f, p50 wait max/min %.2f", float64(maxN)/float64(minN), float64(maxP50)/float64(minP50))
	}
}

// Worker processes are killed with SIGKILL at random moments, many in the
// middle of a write transaction. After each kill the database is intact
// (SQLite's integrity_check), the victim's leases are neither granted
// before their expiry nor refused at it, and the survivor keeps going.
func TestTortureKill9(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { tortureKill9(t, locktest.SQLite(), sqliteAfterKill) })
	t.Run("postgres", func(t *testing.T) { tortureKill9(t, locktest.Postgres(t), postgresAfterKill) })
}

// afterKill is what the kill -9 test does, per engine, around a victim's
// death.
type afterKill struct {
	// victimDSN gives the victim's DSN a name the checks can find it by.
	victimDSN func(t *testing.T, dsn, name string) string
	// settle waits until nothing the victim sent can still commit, then
	// checks the database is sound.
	settle func(t *testing.T, db *sql.DB, name string)
}

var sqliteAfterKill = afterKill{
	victimDSN: func(_ *testing.T, dsn, _ string) string { return dsn },
	settle: func(t *testing.T, db *sql.DB, _ string) {
		t.Helper()
		// A killed process's writes either committed or are rolled back
		// by the next connection; the file is never left corrupt.
		var integrity string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
			t.Fatalf("integrity_check = %q, %v", integrity, err)
		}
	},
}

var postgresAfterKill = afterKill{
	victimDSN: func(t *testing.T, dsn, name string) string {
		return testkit.WithParam(t, dsn, "application_name", name)
	},
	settle: func(t *testing.T, db *sql.DB, name string) {
		t.Helper()
		// A statement the victim sent before it died still runs, and may
		// commit, on its server process, which ends only after that.
		waitFor(t, "the victim's server processes to end", func() bool {
			var n int
			err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&n)
			return err == nil && n == 0
		})
	},
}

func tortureKill9(t *testing.T, b locktest.Backend, after afterKill) {
	kills := scale(6, 40)
	const ttl = 2 * time.Second
	path, db := newTortureDB(t, b, 2)
	ttlEnv := fmt.Sprintf("ENTITYLOCK_TTL_MS=%d", ttl.Milliseconds())
	until := time.Now().Add(time.Hour) // the survivor runs until stopped
	survivor := startWorker(t, "torture", "ENTITYLOCK_DB="+path, "ENTITYLOCK_SESSION_PREFIX=survivor",
		"ENTITYLOCK_GOROUTINES=2", "ENTITYLOCK_HOT=2", "ENTITYLOCK_GUARDED=1", ttlEnv,
		fmt.Sprintf("ENTITYLOCK_UNTIL=%d", until.UnixNano()))
	if err := survivor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { survivor.Process.Kill(); survivor.Wait() })

	checker := mustOpenPath(t, path, lock.WithTTL(ttl))
	rng := rand.New(rand.NewPCG(1, 2))
	grantsBefore, checked := 0, 0
	for k := range kills {
		prefix := fmt.Sprintf("victim%d", k)
		victimDB := after.victimDSN(t, path, prefix)
		victim := startWorker(t, "torture", "ENTITYLOCK_DB="+victimDB, "ENTITYLOCK_SESSION_PREFIX="+prefix,
			"ENTITYLOCK_GOROUTINES=3", "ENTITYLOCK_HOT=2", "ENTITYLOCK_GUARDED=1", "ENTITYLOCK_HOLD_US=3000", ttlEnv,
			fmt.Sprintf("ENTITYLOCK_UNTIL=%d", until.UnixNano()))
		out, err := victim.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			t.Fatalf("victim %d did not start: %q", k, line)
		}
		// Kill it at a random moment once it works: a victim killed
		// before its first grant (a loaded machine can take that long)
		// leaves nothing to check.
		waitFor(t, "the victim's first grant", func() bool {
			var n int
			err := db.QueryRow(`SELECT count(*) FROM entitylock_leases WHERE session_id LIKE $1`, prefix+"-%").Scan(&n)
			return err == nil && n > 0
		})
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		after.settle(t, db, prefix)
		checked += checkVictimLeases(t, checker, path, prefix)
	}
	if checked == 0 {
		t.Errorf("no kill left a live lease behind: the expiry checks never ran")
	}
	if err := db.QueryRow(`SELECT count(*) FROM torture_log WHERE session LIKE 'survivor%'`).Scan(&grantsBefore); err != nil {
		t.Fatal(err)
	}
	// The survivor carries on after the last kill.
	waitFor(t, "the survivor's next grants", func() bool {
		var n int
		db.QueryRow(`SELECT count(*) FROM torture_log WHERE session LIKE 'survivor%'`).Scan(&n)
		return n > grantsBefore+5
	})
	survivor.Process.Kill()
	survivor.Wait()
	grants := checkTorture(t, db)
	t.Logf("%d kills survived, %d leases left by killed workers checked at their expiry; %d grants logged", kills, checked, grants)
}

// checkVictimLeases checks each live lease a killed worker left: refused
// 1ms before its expiry, granted at it. The checker's clock is moved to
// those instants; its grant is released at once. It returns how many
// leases it checked.
func checkVictimLeases(t *testing.T, checker *lock.Manager, dsn, prefix string) int {
	t.Helper()
	all, err := checker.AllLeases(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, l := range all {
		if !strings.HasPrefix(l.SessionID, prefix+"-") || !l.Live(time.Now()) {
			continue
		}
		checked++
		for _, tc := range []struct {
			at      time.Time
			granted bool
		}{{l.ExpiresAt.Add(-time.Millisecond), false}, {l.ExpiresAt, true}} {
			m := mustOpenPath(t, dsn,
				lock.WithClock(func() time.Time { return tc.at }), lock.WithTTL(time.Millisecond))
			s := mustSession(t, m, "checker")
			got, err := s.TryAcquire(t.Context(), l.Entity)
			var he *lock.HeldError
			switch {
			case !tc.granted && !(errors.As(err, &he) && he.Holder.Token == l.Token):
				t.Errorf("%s: 1ms before its expiry, checker got %+v, %v; want ErrHeld by token %d", l.Entity, got, err, l.Token)
			case tc.granted && err != nil:
				t.Errorf("%s: at its expiry, checker got err %v; want a grant", l.Entity, err)
			case tc.granted:
				if got.Token <= l.Token {
					t.Errorf("%s: token %d after %d", l.Entity, got.Token, l.Token)
				}
				s.Release(t.Context(), l.Entity)
			}
			m.Close()
		}
	}
	return checked
}

// Eight processes open the same fresh database at the same moment: all
// succeed, and the schema is migrated once, to one clean version row.
func TestConcurrentStartProcesses(t *testing.T) { engines(t, concurrentStartProcesses) }

func concurrentStartProcesses(t *testing.T, b locktest.Backend) {
	const n = 8
	path := b.NewDSN(t)
	start := time.Now().Add(500 * time.Millisecond)
	outs := make([]*strings.Builder, n)
	cmds := make([]interface{ Wait() error }, n)
	for i := range n {
		cmd := startWorker(t, "open", "ENTITYLOCK_DB="+path, fmt.Sprintf("ENTITYLOCK_START=%d", start.UnixNano()))
		outs[i] = &strings.Builder{}
		cmd.Stdout = outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil || outs[i].String() != "ok\n" {
			t.Errorf("process %d: %v, %q", i, err, outs[i].String())
		}
	}
	db := testkit.DB(t, path)
	versions := testkit.QueryStrings(t, db, `SELECT version || CASE WHEN dirty THEN ',dirty' ELSE ',clean' END FROM entitylock_schema_migrations`)
	want := []string{fmt.Sprintf("%d,clean", schema.Latest())}
	if !slices.Equal(versions, want) {
		t.Errorf("after 8 concurrent opens: versions %q; want one clean version, the latest (%q)", versions, want)
	}
	var fences int
	if err := db.QueryRow(`SELECT count(*) FROM entitylock_fence`).Scan(&fences); err != nil || fences != 1 {
		t.Errorf("after 8 concurrent opens: %d fence rows, %v; want 1", fences, err)
	}
	// The schema works.
	m := mustOpenPath(t, path)
	mustAcquire(t, mustSession(t, m, "a"), "entity::after-start")
}
