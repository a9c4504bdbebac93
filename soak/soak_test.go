package soak_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(envWorker); v != "" {
		proc, _ := strconv.Atoi(v)
		if err := runWorker(proc); err != nil {
			fmt.Fprintln(os.Stderr, "soak worker:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The soak's shape: ENTITYLOCK_SOAK sets its length (default 60s, what
// `make test` runs; `make soak` runs 10m).
const (
	procs       = 3
	defaultSoak = 60 * time.Second
)

// The bounds every sample must hold (README, "Resource bounds").
const (
	maxWAL        = 64 << 20    // SQLite -wal file
	maxWake       = 68 << 10    // SQLite -wake file: made at its one size, never grown
	maxDBFile     = 64 << 20    // SQLite database file; PostgreSQL table + indexes
	maxRows       = 100_000     // lease rows, all states
	maxRSS        = 512 << 20   // per process (the race detector's share included)
	maxGoroutines = 500         // per process (waits and Do come and go; a leak shows as growth)
	maxConns      = 32          // per Manager's pool
	maxP99        = time.Second // of TryAcquire; a busy 2-core machine under the race detector
)

// A measure "keeps growing" when the mean of the last third of the samples
// exceeds the mean of the middle third by more than growthFactor, plus the
// measure's slack (the first third is warm-up).
const growthFactor = 1.25

// sample is one row of the table: the database as the parent sees it, and
// the worst of what the workers reported for the interval.
type sample struct {
	at           time.Duration
	wal, dbSize  int64
	wake         int64 // SQLite's -wake file
	dead         int64 // PostgreSQL: dead tuples
	rows         lock.RowCounts
	rss          int64
	goroutines   int
	conns        int
	tryAcquires  int
	p99          time.Duration
	errors, lost int64 // since the start, all workers
	stalled      int64 // Extend calls that ran after their lease expired
	firstError   string
}

func TestSoak(t *testing.T) {
	if raceEnabled {
		// The race detector multiplies the workers' memory and slows the
		// SQLite engine (WebAssembly) a hundredfold: the soak would measure
		// the detector. `make test` runs the soak again without it.
		t.Skip("the soak measures resources: run it without -race")
	}
	length := defaultSoak
	if v := os.Getenv("ENTITYLOCK_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("ENTITYLOCK_SOAK=%q: %v", v, err)
		}
		length = d
	}
	every := max(length/40, 2*time.Second)
	t.Run("sqlite", func(t *testing.T) {
		path := locktest.SQLite().NewDSN(t)
		soak(t, "sqlite", path, path, length, every)
	})
	t.Run("postgres", func(t *testing.T) {
		b := locktest.Postgres(t)
		dsn := b.NewDSN(t)
		soak(t, "postgres", dsn, dsn, length, every)
	})
}

// soak runs the workers on dsn for length, sampling every interval, then
// prints the table and checks the bounds.
func soak(t *testing.T, engine, dsn, path string, length, every time.Duration) {
	ctx := t.Context()
	probe, err := lock.Open(ctx, dsn, lock.WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()

	reports := make(chan report, 64)
	var wg sync.WaitGroup
	cmds := make([]*exec.Cmd, procs)
	for k := range cmds {
		workerDSN := dsn
		if engine == "postgres" {
			workerDSN = testkit.WithParam(t, dsn, "application_name", fmt.Sprintf("entitylock-soak-%d", k))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWorker+"="+strconv.Itoa(k), envDB+"="+workerDSN,
			envFor+"="+length.String(), envInterval+"="+every.String())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[k] = cmd
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var r report
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Errorf("worker %d: %q: %v", k, sc.Text(), err)
					continue
				}
				reports <- r
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var (
		samples []sample
		latest  = map[int]report{} // each worker's last report
		cur     sample             // TryAcquire calls and p99 since the last sample
	)
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	take := func() {
		cur.at = time.Since(start).Round(time.Second)
		for _, r := range latest {
			cur.rss = max(cur.rss, r.RSS)
			cur.goroutines = max(cur.goroutines, r.Goroutines)
			cur.conns = max(cur.conns, r.Conns)
			cur.errors += r.Errors
			cur.lost += r.LostLeases
			cur.stalled += r.Stalled
			if cur.firstError == "" {
				cur.firstError = r.FirstError
			}
		}
		if err := measureDB(ctx, probe, engine, path, &cur); err != nil {
			t.Errorf("sampling at %v: %v", cur.at, err)
		}
		samples = append(samples, cur)
		cur = sample{}
	}
	receive := func(r report) {
		latest[r.Proc] = r
		cur.tryAcquires += r.TryAcquires
		cur.p99 = max(cur.p99, time.Duration(r.P99Ms*float64(time.Millisecond)))
	}
	for running := true; running; {
		select {
		case r := <-reports:
			receive(r)
		case <-tick.C:
			take()
		case <-done:
			running = false
		}
	}
	for len(reports) > 0 { // the final reports
		receive(<-reports)
	}
	take()
	for k, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v", k, err)
		}
	}

	table := formatTable(engine, samples)
	t.Log("\n" + table)
	if testing.Verbose() {
		fmt.Println(table)
	}
	check(t, samples)
	if engine == "sqlite" {
		if err := probe.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(path + "-wake"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the -wake file outlived every Manager of the file: %v", err)
		}
	}
}

// measureDB fills in what the parent reads from the database.
func measureDB(ctx context.Context, m *lock.Manager, engine, path string, s *sample) error {
	rows, err := m.RowCounts(ctx)
	if err != nil {
		return err
	}
	s.rows = rows
	if engine == "sqlite" {
		s.wal, s.dbSize, s.wake = fileSize(path+"-wal"), fileSize(path), fileSize(path+"-wake")
		return nil
	}
	return m.DB().QueryRowContext(ctx, `SELECT pg_total_relation_size('entitylock_leases'),
		coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'entitylock_leases'::regclass), 0)`).
		Scan(&s.dbSize, &s.dead)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func formatTable(engine string, samples []sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak on %s: %d processes; per interval: the database as sampled, the worst process's RSS, goroutines and pool, the worst p99 of TryAcquire, all processes' TryAcquire calls\n", engine, procs)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	size := "WAL MiB\tDB MiB\tWAKE KiB"
	if engine == "postgres" {
		size = "TABLE+IDX MiB\tDEAD"
	}
	fmt.Fprintf(tw, "T\t%s\tLIVE\tEXPIRED\tRELEASED\tRSS MiB\tGOROUTINES\tCONNS\tTRYACQUIRES\tP99 ms\tERRORS\tLOST\tSTALLED\t\n", size)
	for _, s := range samples {
		sz := mib(s.wal) + "\t" + mib(s.dbSize) + "\t" + strconv.FormatInt(s.wake>>10, 10)
		if engine == "postgres" {
			sz = mib(s.dbSize) + "\t" + strconv.FormatInt(s.dead, 10)
		}
		fmt.Fprintf(tw, "%v\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%.1f\t%d\t%d\t%d\t\n",
			s.at, sz, s.rows.Live, s.rows.Expired, s.rows.Released,
			mib(s.rss), s.goroutines, s.conns, s.tryAcquires, float64(s.p99)/float64(time.Millisecond), s.errors, s.lost, s.stalled)
	}
	tw.Flush()
	return b.String()
}

// check fails t for every sample past a bound and every measure that kept
// growing.
func check(t *testing.T, samples []sample) {
	t.Helper()
	if len(samples) < 6 {
		t.Fatalf("only %d samples: too short a soak to judge", len(samples))
	}
	total := func(s sample) int64 { return s.rows.Live + s.rows.Expired + s.rows.Released }
	bounds := []struct {
		name  string
		get   func(sample) int64
		limit int64
		slack int64 // for the growth check
	}{
		{"-wal bytes", func(s sample) int64 { return s.wal }, maxWAL, 8 << 20},
		{"-wake bytes", func(s sample) int64 { return s.wake }, maxWake, 0},
		{"database bytes", func(s sample) int64 { return s.dbSize }, maxDBFile, 8 << 20},
		{"rows", total, maxRows, 5000},
		{"RSS bytes", func(s sample) int64 { return s.rss }, maxRSS, 64 << 20},
		{"goroutines", func(s sample) int64 { return int64(s.goroutines) }, maxGoroutines, 20},
		{"connections", func(s sample) int64 { return int64(s.conns) }, maxConns, 8},
		{"p99 TryAcquire ns", func(s sample) int64 { return int64(s.p99) }, int64(maxP99), int64(maxP99)},
	}
	for _, b := range bounds {
		for _, s := range samples {
			if v := b.get(s); v > b.limit {
				t.Errorf("%s at %v: %d, over the bound %d", b.name, s.at, v, b.limit)
			}
		}
		third := len(samples) / 3
		middle, last := mean(samples[third:2*third], b.get), mean(samples[len(samples)-third:], b.get)
		if last > middle*growthFactor+float64(b.slack) {
			t.Errorf("%s keeps growing: mean %.0f in the last third of the run, %.0f in the middle third", b.name, last, middle)
		}
	}
	if end := samples[len(samples)-1]; end.errors > 0 {
		t.Errorf("%d calls failed; the first: %s", end.errors, end.firstError)
	}
}

func mean(ss []sample, get func(sample) int64) float64 {
	var sum float64
	for _, s := range ss {
		sum += float64(get(s))
	}
	return sum / float64(len(ss))
}
