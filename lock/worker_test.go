package lock_test

// The test binary doubles as the worker processes of the multi-process
// tests: TestMain runs a worker instead of the tests when
// ENTITYLOCK_WORKER names one. Workers get their settings from the
// environment and report through the database or stdout.

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("ENTITYLOCK_WORKER"); mode != "" {
		if err := runWorker(mode); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runWorker(mode string) error {
	ctx := context.Background()
	switch mode {
	case "torture":
		return tortureWorker(ctx)
	case "open":
		return openWorker(ctx)
	case "holder":
		return holderWorker(ctx)
	}
	return fmt.Errorf("unknown worker mode %q", mode)
}

// startWorker starts this test binary as a worker of mode with env.
func startWorker(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"ENTITYLOCK_WORKER=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// The torture tables, created by the parent test.
// The SQL here runs on both engines: BIGINT and $n placeholders mean the
// same to SQLite and PostgreSQL.
var tortureSchema = []string{
	`CREATE TABLE IF NOT EXISTS torture_counters (entity TEXT PRIMARY KEY, n BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS torture_log (
    entity TEXT NOT NULL, token BIGINT NOT NULL, session TEXT NOT NULL,
    enter_ns BIGINT NOT NULL, exit_ns BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS torture_errors (session TEXT NOT NULL, err TEXT NOT NULL)`,
}

// tortureWorker runs ENTITYLOCK_GOROUTINES goroutines, each with its own
// session, that take one of ENTITYLOCK_HOT entities until ENTITYLOCK_UNTIL
// (Unix ns). Inside each grant, after ENTITYLOCK_HOLD_US of "work":
//   - plain mode: an unprotected read-modify-write of the entity's counter,
//     one statement each with a pause between, so an overlap loses an
//     update; then the grant is logged;
//   - ENTITYLOCK_GUARDED=1: the same read-modify-write and the log row in
//     one transaction checked by Guard, so a process killed at any moment
//     leaves either all of a grant's effects or none.
//
// Every error other than contention is recorded in torture_errors.
func tortureWorker(ctx context.Context) error {
	dsn := os.Getenv("ENTITYLOCK_DB")
	prefix := os.Getenv("ENTITYLOCK_SESSION_PREFIX")
	goroutines := envInt("ENTITYLOCK_GOROUTINES", 4)
	hot := envInt("ENTITYLOCK_HOT", 3)
	until := time.Unix(0, int64(envInt("ENTITYLOCK_UNTIL", 0)))
	guarded := os.Getenv("ENTITYLOCK_GUARDED") == "1"
	ttl := time.Duration(envInt("ENTITYLOCK_TTL_MS", 2000)) * time.Millisecond
	hold := time.Duration(envInt("ENTITYLOCK_HOLD_US", 0)) * time.Microsecond

	m, err := lock.Open(ctx, dsn, lock.WithTTL(ttl),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond, Jitter: 0.5}))
	if err != nil {
		return err
	}
	defer m.Close()
	db := m.DB()
	fmt.Println("ready") // the crash test kills only workers that started
	var (
		wg      sync.WaitGroup
		waitsMu sync.Mutex
		waits   []time.Duration // of each grant, from the call to Acquire
	)
	for g := range goroutines {
		wg.Go(func() {
			id := fmt.Sprintf("%s-%d", prefix, g)
			s, err := m.Session(id)
			if err != nil {
				panic(err)
			}
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			record := func(err error) {
				db.ExecContext(ctx, `INSERT INTO torture_errors VALUES ($1, $2)`, id, err.Error())
			}
			for time.Now().Before(until) {
				entity := fmt.Sprintf("hot::%d", rng.IntN(hot))
				actx, cancel := context.WithDeadline(ctx, until)
				asked := time.Now()
				l, err := s.Acquire(actx, entity)
				cancel()
				if err == nil {
					waitsMu.Lock()
					waits = append(waits, time.Since(asked))
					waitsMu.Unlock()
				}
				if errors.Is(err, context.DeadlineExceeded) {
					return
				}
				if err != nil {
					record(err)
					return
				}
				enter := time.Now()
				time.Sleep(hold) // work under the lease, where a kill leaves it behind
				if guarded {
					err = guardedIncrement(ctx, m, l, enter)
				} else {
					err = plainIncrement(ctx, db, l, enter)
				}
				if err != nil {
					record(err)
				}
				if _, err := s.Release(ctx, entity); err != nil {
					record(err)
				}
			}
		})
	}
	wg.Wait()
	// For the report on fairness between processes.
	slices.Sort(waits)
	q := func(p float64) time.Duration {
		if len(waits) == 0 {
			return 0
		}
		return waits[int(p*float64(len(waits)-1))]
	}
	fmt.Printf("waits %d %d %d %d\n", len(waits), q(0.5).Microseconds(), q(0.99).Microseconds(), q(1).Microseconds())
	return nil
}

func plainIncrement(ctx context.Context, db *sql.DB, l lock.Lease, enter time.Time) error {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT n FROM torture_counters WHERE entity = $1`, l.Entity).Scan(&n); err != nil {
		return err
	}
	time.Sleep(100 * time.Microsecond) // widen the window for a lost update
	if _, err := db.ExecContext(ctx, `UPDATE torture_counters SET n = $1 WHERE entity = $2`, n+1, l.Entity); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, `INSERT INTO torture_log VALUES ($1, $2, $3, $4, $5)`,
		l.Entity, l.Token, l.SessionID, enter.UnixNano(), time.Now().UnixNano())
	return err
}

func guardedIncrement(ctx context.Context, m *lock.Manager, l lock.Lease, enter time.Time) error {
	tx, err := m.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := m.Guard(ctx, tx, l); err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT n FROM torture_counters WHERE entity = $1`, l.Entity).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE torture_counters SET n = $1 WHERE entity = $2`, n+1, l.Entity); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO torture_log VALUES ($1, $2, $3, $4, $5)`,
		l.Entity, l.Token, l.SessionID, enter.UnixNano(), time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

// openWorker opens ENTITYLOCK_DB at ENTITYLOCK_START (Unix ns) and prints
// "ok" or the error.
func openWorker(ctx context.Context) error {
	time.Sleep(time.Until(time.Unix(0, int64(envInt("ENTITYLOCK_START", 0)))))
	m, err := lock.Open(ctx, os.Getenv("ENTITYLOCK_DB"))
	if err != nil {
		fmt.Println("error:", err)
		return nil
	}
	fmt.Println("ok")
	return m.Close()
}

// holderWorker holds "entity::hot" in ENTITYLOCK_DB on demand, for the
// cross-process handoff benchmark: on stdin, "acquire" takes it and answers
// "held"; "release" answers "released <Unix ns>", read just before the
// release.
func holderWorker(ctx context.Context) error {
	m, err := lock.Open(ctx, os.Getenv("ENTITYLOCK_DB"))
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := m.Session("holder")
	if err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "acquire":
			if _, err := s.TryAcquire(ctx, "entity::hot"); err != nil {
				return err
			}
			fmt.Println("held")
		case "release":
			at := time.Now()
			if _, err := s.Release(ctx, "entity::hot"); err != nil {
				return err
			}
			fmt.Println("released", at.UnixNano())
		}
	}
	return in.Err()
}
