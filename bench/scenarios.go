package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sqlite "github.com/ncruces/go-sqlite3/driver"
	"github.com/redis/go-redis/v9"

	"github.com/entitylock/entitylock/bench/internal/turns"
	"github.com/entitylock/entitylock/lock"
)

var dbSeq atomic.Int32

// freshPath names a new database file in the run's directory.
func freshPath(o options, name string) string {
	return filepath.Join(o.dir, fmt.Sprintf("%02d-%s.db", dbSeq.Add(1), name))
}

// The same settings for every SQLite database: WAL, synchronous=NORMAL,
// default page size (4096) and cache, a 10s busy timeout.
func openSeedNcruces(o options, name string) (*sql.DB, error) {
	return sqlite.Open("file:" + freshPath(o, name) +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)")
}

func openSeedMattn(o options, name string) (*sql.DB, error) {
	return sql.Open("sqlite3-mattn", "file:"+freshPath(o, name)+
		"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL")
}

func openOurs(ctx context.Context, o options, name string, opts ...lock.Option) (*lock.Manager, error) {
	return lock.Open(ctx, freshPath(o, name), opts...)
}

// P1: uncontended TryAcquire+Release pairs.
func benchPairs(ctx context.Context, o options, rep *report) error {
	m, err := openOurs(ctx, o, "ours-pairs")
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := timeLockPairs(ctx, m, o.pairs)
	if err != nil {
		return err
	}
	r.id, r.name = "P1-ours", "lock API TryAcquire+Release (ncruces, pure Go)"
	rep.add(r)
	if err := benchDurablePairs(ctx, o, rep); err != nil {
		return err
	}

	for _, v := range []struct {
		id, name string
		open     func(options, string) (*sql.DB, error)
		prepared bool
	}{
		{"P1-seed", "seed SQL as written (ncruces)", openSeedNcruces, false},
		{"P1-seed-prep", "seed SQL, prepared (ncruces)", openSeedNcruces, true},
		{"P1-mattn", "seed SQL as written (mattn, cgo)", openSeedMattn, false},
		{"P1-mattn-prep", "seed SQL, prepared (mattn, cgo)", openSeedMattn, true},
	} {
		db, err := v.open(o, v.id)
		if err != nil {
			return err
		}
		st, err := newSeedStore(ctx, db, v.prepared)
		if err != nil {
			db.Close()
			return err
		}
		r, err := timeOps(o.pairs, func(int) error {
			ok, err := st.tryAcquire(ctx, "entity::bench", "bench")
			if err == nil && !ok {
				err = errors.New("seed refused an uncontended acquire")
			}
			if err != nil {
				return err
			}
			return st.releaseOne(ctx, "entity::bench", "bench")
		})
		db.Close()
		if err != nil {
			return err
		}
		r.id, r.name = v.id, v.name
		rep.add(r)
	}
	if err := benchPostgresPairs(ctx, o, rep); err != nil {
		rep.notes = append(rep.notes, "PostgreSQL baseline skipped: "+err.Error())
	}
	if err := benchRedisPairs(ctx, o, rep); err != nil {
		rep.notes = append(rep.notes, "Redis baseline skipped: "+err.Error())
	}
	rep.ratio("P1a", "lock API vs seed SQL, same driver (ops/s ratio)", "P1-ours", "P1-seed", 1.3)
	rep.ratio("P1b", "lock API (pure Go) vs seed SQL on mattn (cgo)", "P1-ours", "P1-mattn", 1.0)
	return nil
}

// P1-full: the same pairs with synchronous=FULL, which syncs every commit
// to disk (a grant survives power loss) instead of NORMAL's syncs at
// checkpoints (a grant survives a process crash). Fewer pairs: each costs
// two fsyncs.
func benchDurablePairs(ctx context.Context, o options, rep *report) error {
	m, err := lock.Open(ctx, "file:"+freshPath(o, "ours-full")+"?_pragma=synchronous(full)")
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := timeLockPairs(ctx, m, max(o.pairs/20, 100))
	if err != nil {
		return err
	}
	r.id, r.name = "P1-full", "lock API TryAcquire+Release, synchronous=FULL"
	rep.add(r)
	rep.ratio("P1-sync", "synchronous=FULL vs the default NORMAL (ops/s ratio; informative)", "P1-full", "P1-ours", 0)
	return nil
}

// timeLockPairs times n uncontended TryAcquire+Release pairs through m.
func timeLockPairs(ctx context.Context, m *lock.Manager, n int) (row, error) {
	s, err := m.Session("bench")
	if err != nil {
		return row{}, err
	}
	return timeOps(n, func(int) error {
		if _, err := s.TryAcquire(ctx, "entity::bench"); err != nil {
			return err
		}
		_, err := s.Release(ctx, "entity::bench")
		return err
	})
}

func benchPostgresPairs(ctx context.Context, o options, rep *report) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, o.pgDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	const key = 4242
	r, err := timeOps(o.pairs, func(int) error {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("advisory lock refused")
		}
		return conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&ok)
	})
	if err != nil {
		return err
	}
	r.id, r.name, r.note = "P1-pg", "pg_try_advisory_lock + unlock (PostgreSQL, loopback)", "session locks: no TTL, no fencing"
	rep.add(r)
	return nil
}

func benchRedisPairs(ctx context.Context, o options, rep *report) error {
	c := redis.NewClient(&redis.Options{Addr: o.redis, DialTimeout: 2 * time.Second})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return err
	}
	r, err := timeOps(o.pairs, func(int) error {
		ok, err := c.SetNX(ctx, "entitylock:bench", "bench", 120*time.Second).Result()
		if err == nil && !ok {
			err = errors.New("SET NX refused")
		}
		if err != nil {
			return err
		}
		return c.Del(ctx, "entitylock:bench").Err()
	})
	if err != nil {
		return err
	}
	r.id, r.name, r.note = "P1-redis", "SET NX PX + DEL (Redis, loopback)", "no fencing; DEL is not owner-checked"
	rep.add(r)
	return nil
}

// startWaiter has waiter, of m, Acquire entity in the background, and
// returns once the waiter was refused (it is in line). granted gives the
// time of the grant.
func startWaiter(ctx context.Context, m *lock.Manager, waiter *lock.Session, entity string) (granted func() (time.Time, error)) {
	before := m.Stats().Contended
	got := make(chan error, 1)
	var at time.Time
	go func() {
		_, err := waiter.Acquire(ctx, entity)
		at = time.Now()
		got <- err
	}()
	for m.Stats().Contended == before {
		time.Sleep(20 * time.Microsecond)
	}
	return func() (time.Time, error) {
		err := <-got
		return at, err
	}
}

// P2: in-process handoff. A waiter is blocked; after a random 0–50 ms the
// holder releases; latency runs from the release to the waiter's grant.
func benchHandoff(ctx context.Context, o options, rep *report) error {
	rng := rand.New(rand.NewPCG(1, 2))
	delays := make([]time.Duration, o.handoffs)
	for i := range delays {
		delays[i] = time.Duration(rng.Int64N(int64(50 * time.Millisecond)))
	}

	m, err := openOurs(ctx, o, "ours-handoff")
	if err != nil {
		return err
	}
	defer m.Close()
	holder, _ := m.Session("holder")
	waiter, _ := m.Session("waiter")
	r := row{id: "P2-ours", name: "handoff, lock API (default retry policy)"}
	for _, d := range delays {
		if _, err := holder.TryAcquire(ctx, "hot"); err != nil {
			return err
		}
		granted := startWaiter(ctx, m, waiter, "hot")
		time.Sleep(d)
		released := time.Now()
		if _, err := holder.Release(ctx, "hot"); err != nil {
			return err
		}
		at, err := granted()
		if err != nil {
			return err
		}
		r.record(at.Sub(released))
		if _, err := waiter.Release(ctx, "hot"); err != nil {
			return err
		}
	}
	r.note = "ops/s column: 1 / mean latency"
	rep.add(r)

	db, err := openSeedNcruces(o, "seed-handoff")
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := newSeedStore(ctx, db, false)
	if err != nil {
		return err
	}
	rs := row{id: "P2-seed", name: "handoff, seed policy (sleep 50/100/200 ms, then give up)"}
	gaveUp := 0
	for _, d := range delays {
		if ok, err := st.tryAcquire(ctx, "hot", "holder"); err != nil || !ok {
			return fmt.Errorf("seed holder: %v, %v", ok, err)
		}
		firstTry := make(chan struct{})
		got := make(chan time.Time, 1)
		go func() {
			for attempt := 0; attempt <= 3; attempt++ {
				ok, err := st.tryAcquire(ctx, "hot", "waiter")
				if attempt == 0 {
					close(firstTry)
				}
				if err == nil && ok {
					got <- time.Now()
					return
				}
				if attempt < 3 {
					time.Sleep(50 * time.Millisecond << attempt)
				}
			}
			got <- time.Time{}
		}()
		<-firstTry
		time.Sleep(d)
		released := time.Now()
		if err := st.releaseOne(ctx, "hot", "holder"); err != nil {
			return err
		}
		g := <-got
		if g.IsZero() {
			gaveUp++
			continue
		}
		rs.record(g.Sub(released))
		if err := st.releaseOne(ctx, "hot", "waiter"); err != nil {
			return err
		}
	}
	rs.note = fmt.Sprintf("%d of %d gave up; ops/s column: 1 / mean latency", gaveUp, len(delays))
	rep.add(rs)
	if ours, ok := rep.find("P2-ours"); ok {
		rep.targets = append(rep.targets,
			target{id: "P2a", what: "handoff p50, lock API (ms)", got: ms(ours.quantile(0.5)), want: 2, atMost: true},
			target{id: "P2b", what: "handoff p99, lock API (ms)", got: ms(ours.quantile(0.99)), want: 10, atMost: true})
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fillOurs inserts n live leases of 1,000 other sessions, behind the API.
func fillOurs(ctx context.Context, m *lock.Manager, n int) error {
	now := time.Now().UnixMilli()
	_, err := m.DB().ExecContext(ctx, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
		INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at)
		SELECT 'bulk::' || i, 'bulk-' || (i % 1000), i, ?, ? FROM c`, n, now, now+3_600_000)
	return err
}

// P3: cost against table size. The two tables are filled first, then
// probed in turns of one TryAcquire+Release each (turns.Orders), so
// that a burst of load on this shared machine (or the checkpoint after the
// large fill) falls on both rows alike: probed one after the other, P3a
// read 1.53 in one run and 1.00–1.01 in the next three.
func benchScale(ctx context.Context, o options, rep *report) error {
	small, err := openOurs(ctx, o, "ours-1k")
	if err != nil {
		return err
	}
	defer small.Close()
	if err := fillOurs(ctx, small, 1000); err != nil {
		return err
	}
	large, err := openOurs(ctx, o, "ours-large")
	if err != nil {
		return err
	}
	defer large.Close()
	if err := fillOurs(ctx, large, o.rows); err != nil {
		return err
	}
	rows := []row{
		{id: "P3-1k", name: "TryAcquire among 1,000 live leases"},
		{id: "P3-large", name: fmt.Sprintf("TryAcquire among %d live leases", o.rows)},
	}
	var sessions []*lock.Session
	for _, m := range []*lock.Manager{small, large} {
		s, _ := m.Session("probe")
		sessions = append(sessions, s)
	}
	n := max(o.pairs/4, 100)
	orders := turns.Orders(len(sessions))
	for i := range n {
		e := "probe::" + strconv.Itoa(i)
		for _, j := range orders[i%len(orders)] {
			t0 := time.Now()
			if _, err := sessions[j].TryAcquire(ctx, e); err != nil {
				return err
			}
			rows[j].lat = append(rows[j].lat, time.Since(t0))
			if _, err := sessions[j].Release(ctx, e); err != nil {
				return err
			}
			rows[j].total += time.Since(t0) // includes the release; see p50
		}
	}
	for _, r := range rows {
		r.note = "latency of TryAcquire alone"
		rep.add(r)
	}
	a, _ := rep.find("P3-large")
	b, _ := rep.find("P3-1k")
	rep.targets = append(rep.targets, target{id: "P3a", what: "TryAcquire p50, large table / 1,000 rows",
		got: float64(a.quantile(0.5)) / float64(b.quantile(0.5)), want: 1.5, atMost: true})

	seedDB, err := openSeedNcruces(o, "seed-large")
	if err != nil {
		return err
	}
	defer seedDB.Close()
	seed, err := newSeedStore(ctx, seedDB, false)
	if err != nil {
		return err
	}
	if err := seed.fill(ctx, o.rows); err != nil {
		return err
	}
	for _, k := range []int{10, 1000} {
		reps := 5
		if k == 10 {
			reps = 20
		}
		ours := row{id: fmt.Sprintf("P3-rel%d", k), name: fmt.Sprintf("ReleaseAll of %d leases among %d rows, lock API", k, o.rows)}
		s, _ := large.Session(fmt.Sprintf("mine-%d", k))
		for range reps {
			names := make([]string, k)
			for i := range names {
				names[i] = fmt.Sprintf("mine-%d::%d", k, i)
			}
			if _, err := s.AcquireAll(ctx, names...); err != nil {
				return err
			}
			t0 := time.Now()
			n, err := s.ReleaseAll(ctx)
			d := time.Since(t0)
			if err != nil || n != k {
				return fmt.Errorf("ReleaseAll = %d, %v", n, err)
			}
			ours.record(d)
		}
		rep.add(ours)

		theirs := row{id: fmt.Sprintf("P3-seedrel%d", k), name: fmt.Sprintf("ReleaseAll of %d leases among %d rows, seed SQL", k, o.rows)}
		for range reps {
			tx, err := seedDB.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			for i := range k {
				if _, err := tx.ExecContext(ctx, `INSERT INTO entity_advisory_locks VALUES (?, ?, datetime('now'), datetime('now', '+120 seconds'))`,
					fmt.Sprintf("mine-%d::%d", k, i), fmt.Sprintf("mine-%d", k)); err != nil {
					tx.Rollback()
					return err
				}
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			t0 := time.Now()
			n, err := seed.releaseAll(ctx, fmt.Sprintf("mine-%d", k))
			d := time.Since(t0)
			if err != nil || n != int64(k) {
				return fmt.Errorf("seed release_all = %d, %v", n, err)
			}
			theirs.record(d)
		}
		rep.add(theirs)
		want := 100.0
		if k == 1000 {
			want = 4
		}
		rep.targets = append(rep.targets, target{id: fmt.Sprintf("P3-%d", k),
			what: fmt.Sprintf("ReleaseAll of %d among %d rows: seed p50 / lock API p50", k, o.rows),
			got:  float64(theirs.quantile(0.5)) / float64(ours.quantile(0.5)), want: want})
	}
	return nil
}

// P4: AcquireAll of 100 entities against 100 sequential Acquire calls and
// against the floor, the three timed in alternation.
func benchAcquireAll(ctx context.Context, o options, rep *report) error {
	err := timeAcquireAll(ctx, o, rep, "P4", "", upsertFloor, func(name string) (*lock.Manager, func(), error) {
		m, err := openOurs(ctx, o, name)
		if err != nil {
			return nil, nil, err
		}
		return m, func() { m.Close() }, nil
	})
	if err != nil {
		return err
	}
	all, _ := rep.find("P4-all")
	floor, _ := rep.find("P4-floor")
	rep.targets = append(rep.targets,
		target{id: "P4", what: "AcquireAll(100) / bare 100-row upsert, mean time",
			got: all.total.Seconds() / float64(len(all.lat)) / (floor.total.Seconds() / float64(len(floor.lat))), want: 1.5, atMost: true},
		target{id: "P4-p50", what: "AcquireAll(100) / bare 100-row upsert, p50 (no goal)",
			got: float64(all.quantile(0.5)) / float64(floor.quantile(0.5))})
	rep.ratio("P4-old", "AcquireAll(100) vs 100 × Acquire (the old goal, above the floor)", "P4-all", "P4-seq", 0)
	return nil
}

// The floor of P4: the bare upsert of the same 100 rows in the same schema,
// one prepared statement on the Manager's own handle — no held-check, no
// RETURNING, no fencing token logic, so not a lock at all: only the row
// writes every grant of 100 entities must make. Its arguments: session,
// now, expiry (Unix ms) and the JSON array of the entities.
const upsertFloor = `INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at)
SELECT j.value, ?1, 1, ?2, ?3 FROM json_each(?4) AS j WHERE true
ON CONFLICT (entity) DO UPDATE SET
    session_id = excluded.session_id, token = entitylock_leases.token + 1,
    acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`

// timeAcquireAll adds the rows <prefix>-all (AcquireAll of 100 entities)
// and <prefix>-seq (100 sequential Acquire calls) and, when floorSQL is
// set, <prefix>-floor (floorSQL run on the same 100 entities, with the
// arguments of upsertFloor), each on a Manager from open, which returns
// the function that closes it.
func timeAcquireAll(ctx context.Context, o options, rep *report, prefix, engine, floorSQL string,
	open func(name string) (*lock.Manager, func(), error)) error {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("entity::%03d", i)
	}
	reps := max(o.pairs/100, 20)
	type variant struct {
		id, name string
		do       func(*lock.Manager, *lock.Session) error
	}
	variants := []variant{
		{prefix + "-all", "AcquireAll of 100 entities" + engine, func(_ *lock.Manager, s *lock.Session) error {
			_, err := s.AcquireAll(ctx, names...)
			return err
		}},
		{prefix + "-seq", "100 sequential Acquire calls" + engine, func(_ *lock.Manager, s *lock.Session) error {
			for _, n := range names {
				if _, err := s.Acquire(ctx, n); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	if floorSQL != "" {
		var st *sql.Stmt
		defer func() {
			if st != nil {
				st.Close()
			}
		}()
		variants = append(variants, variant{prefix + "-floor", "bare upsert of the same 100 rows (not a lock: the floor)" + engine,
			func(m *lock.Manager, _ *lock.Session) error {
				if st == nil {
					var err error
					if st, err = m.DB().PrepareContext(ctx, floorSQL); err != nil {
						return err
					}
				}
				list, err := json.Marshal(names)
				if err != nil {
					return err
				}
				now := time.Now().UnixMilli()
				_, err = st.ExecContext(ctx, "bench", now, now+120_000, string(list))
				return err
			}})
	}
	// Each variant on a database of its own, all timed in alternation so
	// that each sees the same stretches of a busy machine.
	rows := make([]row, len(variants))
	managers := make([]*lock.Manager, len(variants))
	sessions := make([]*lock.Session, len(variants))
	for i, v := range variants {
		m, done, err := open(v.id)
		if err != nil {
			return err
		}
		defer done()
		managers[i] = m
		sessions[i], _ = m.Session("bench")
		rows[i] = row{id: v.id, name: v.name}
	}
	for n := range reps {
		for k := range variants {
			i := (n + k) % len(variants)
			t0 := time.Now()
			if err := variants[i].do(managers[i], sessions[i]); err != nil {
				return err
			}
			rows[i].record(time.Since(t0))
			if _, err := sessions[i].ReleaseAll(ctx); err != nil {
				return err
			}
		}
	}
	for _, r := range rows {
		rep.add(r)
	}
	return nil
}

// P5: 8 sessions in one process contending for 16 entities.
func benchContended(ctx context.Context, o options, rep *report) error {
	const sessions, entities = 8, 16
	d := 3 * time.Second
	if o.quick {
		d = time.Second
	}
	workload := func(id, name string, grant func(s int, e string) (bool, error), release func(s int, e string) error) error {
		var (
			mu  sync.Mutex
			lat []time.Duration
			wg  sync.WaitGroup
			bad atomic.Value
		)
		until := time.Now().Add(d)
		start := time.Now()
		for s := range sessions {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(s), 7))
				for time.Now().Before(until) {
					e := "e" + strconv.Itoa(rng.IntN(entities))
					t0 := time.Now()
					ok, err := grant(s, e)
					if err != nil {
						bad.Store(err)
						return
					}
					if !ok {
						continue
					}
					l := time.Since(t0)
					if err := release(s, e); err != nil {
						bad.Store(err)
						return
					}
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err, _ := bad.Load().(error); err != nil {
			return err
		}
		rep.add(row{id: id, name: name, lat: lat, total: time.Since(start), note: "ops/s = grants/s; latency = time to a grant"})
		return nil
	}

	m, err := openOurs(ctx, o, "ours-contended")
	if err != nil {
		return err
	}
	defer m.Close()
	ss := make([]*lock.Session, sessions)
	for i := range ss {
		ss[i], _ = m.Session("s" + strconv.Itoa(i))
	}
	err = workload("P5-ours", "8 sessions × 16 entities, lock API", func(s int, e string) (bool, error) {
		_, err := ss[s].Acquire(ctx, e)
		if errors.Is(err, lock.ErrHeld) {
			return false, nil
		}
		return err == nil, err
	}, func(s int, e string) error {
		_, err := ss[s].Release(ctx, e)
		return err
	})
	if err != nil {
		return err
	}

	db, err := openSeedNcruces(o, "seed-contended")
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := newSeedStore(ctx, db, false)
	if err != nil {
		return err
	}
	err = workload("P5-seed", "8 sessions × 16 entities, seed SQL and policy", func(s int, e string) (bool, error) {
		for attempt := 0; attempt <= 3; attempt++ {
			ok, err := st.tryAcquire(ctx, e, "s"+strconv.Itoa(s))
			if err != nil || ok {
				return ok, err
			}
			if attempt < 3 {
				time.Sleep(50 * time.Millisecond << attempt)
			}
		}
		return false, nil
	}, func(s int, e string) error {
		return st.releaseOne(ctx, e, "s"+strconv.Itoa(s))
	})
	if err != nil {
		return err
	}
	rep.ratio("P5", "contended grants/s, lock API vs seed policy (no goal)", "P5-ours", "P5-seed", 0)
	return nil
}

// Memory: allocations per TryAcquire and the resident memory a Manager
// with its default pool adds.
func benchMemory(ctx context.Context, o options, rep *report) error {
	m, err := openOurs(ctx, o, "ours-mem")
	if err != nil {
		return err
	}
	defer m.Close()
	s, _ := m.Session("bench")
	res := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.TryAcquire(ctx, "entity::bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	rep.notes = append(rep.notes, fmt.Sprintf("TryAcquire (a refresh): %d B/op, %d allocs/op, %v/op",
		res.AllocedBytesPerOp(), res.AllocsPerOp(), time.Duration(res.NsPerOp())))

	// Open several Managers, each with a few pooled connections, and divide
	// the growth of the resident set and of the Go heap between them: one
	// Manager alone is below the noise of either figure.
	const managers = 8
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	before := rss()
	opened := make([]*lock.Manager, managers)
	for k := range opened {
		mk, err := openOurs(ctx, o, fmt.Sprintf("ours-rss-%d", k))
		if err != nil {
			return err
		}
		opened[k] = mk
		sk, _ := mk.Session("rss")
		var wg sync.WaitGroup
		for i := range 4 { // put a few connections in the pool
			wg.Go(func() { sk.TryAcquire(ctx, "e"+strconv.Itoa(i)) })
		}
		wg.Wait()
	}
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	after := rss()
	conns := opened[0].DB().Stats().OpenConnections
	for _, mk := range opened {
		mk.Close()
	}
	rep.notes = append(rep.notes, fmt.Sprintf("memory per Manager (mean of %d, each with %d pooled connections after 4 concurrent calls): resident %.1f MiB, Go heap in use %.1f MiB",
		managers, conns, float64(after-before)/managers/(1<<20), float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/managers/(1<<20)))
	return nil
}

// rss reads this process's resident set size from /proc (0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
