// Command bench compares entitylock with what its users would otherwise
// run, in one process, one comparison after another, on fresh databases in
// one directory, and prints ops/s, latency quantiles and the ratios that the
// performance targets are stated in.
//
//	cd bench && go run -ldflags="-X github.com/mattn/go-sqlite3.driverName=sqlite3-mattn" .
//
// (The -X flag renames the cgo driver, which otherwise registers the same
// database/sql name as the pure-Go one. `make bench-compare` passes it.)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

type options struct {
	dir      string
	pairs    int
	handoffs int
	rows     int
	quick    bool
	pgDSN    string
	redis    string
	only     string
	holder   string
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "directory for the database files (default: a new temp directory)")
	flag.IntVar(&o.pairs, "pairs", 20000, "operations per throughput row")
	flag.IntVar(&o.handoffs, "handoffs", 300, "handoffs measured per handoff row")
	flag.IntVar(&o.rows, "rows", 1_000_000, "live leases in the large table of the scale rows")
	flag.BoolVar(&o.quick, "quick", false, "small counts, for a smoke run")
	flag.StringVar(&o.only, "only", "", "run only the steps whose name starts with this (P1, P2, ..., memory, B1, B2)")
	flag.StringVar(&o.pgDSN, "postgres", envOr("ENTITYLOCK_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server for its rows (each run makes and drops a schema)")
	flag.StringVar(&o.redis, "redis", "127.0.0.1:6379", "Redis address for its baseline")
	flag.StringVar(&o.holder, "holder", "", "internal: run as the holder process of P7 and P8 on this DSN")
	flag.Parse()
	if o.holder != "" {
		if err := runHolder(o.holder); err != nil {
			fail(err)
		}
		return
	}
	if o.quick {
		o.pairs, o.handoffs, o.rows = 2000, 30, 20_000
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "entitylock-bench")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	if err := run(context.Background(), o); err != nil {
		fail(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// row is one line of the results table.
type row struct {
	id, name string
	lat      []time.Duration // per operation
	total    time.Duration   // wall time of all operations
	note     string
}

// record adds one operation that took d.
func (r *row) record(d time.Duration) {
	r.lat = append(r.lat, d)
	r.total += d
}

func (r row) opsPerSec() float64 {
	if r.total <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.total.Seconds()
}

func (r row) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// target is a ratio between two rows (or a bound on one) and its goal.
type target struct {
	id, what string
	got      float64
	want     float64
	atMost   bool // the ratio must not exceed want
	skipped  string
}

type report struct {
	quick   bool // small sizes: the verdicts would mean nothing
	rows    []row
	targets []target
	notes   []string
}

func (r *report) add(rw row) {
	r.rows = append(r.rows, rw)
	fmt.Fprintf(os.Stderr, "  done: %s\n", rw.name)
}

func (r *report) find(id string) (row, bool) {
	for _, rw := range r.rows {
		if rw.id == id {
			return rw, true
		}
	}
	return row{}, false
}

func run(ctx context.Context, o options) error {
	fmt.Printf("entitylock bench — %s, %d CPUs, %s/%s, %s\n", runtime.Version(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("pairs %d, handoffs %d, scale rows %d, dir %s\n\n", o.pairs, o.handoffs, o.rows, o.dir)
	rep := &report{quick: o.quick}
	steps := []struct {
		name string
		fn   func(context.Context, options, *report) error
	}{
		{"P1 uncontended pairs", benchPairs},
		{"P2 handoff", benchHandoff},
		{"P3 scale", benchScale},
		{"P4 AcquireAll", benchAcquireAll},
		{"P5 contended throughput", benchContended},
		{"P6 PostgreSQL pairs", benchPostgres},
		{"P7 PostgreSQL handoff", benchPostgresHandoff},
		{"P8 SQLite handoff across processes", benchSQLiteHandoff},
		{"memory", benchMemory},
		{"B1 WAL bound", benchWAL},
		{"B2 purge stall", benchPurgeStall},
	}
	for _, s := range steps {
		if !strings.HasPrefix(s.name, o.only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "%s...\n", s.name)
		if err := s.fn(ctx, o, rep); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	rep.print()
	return nil
}

func (r *report) print() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tWHAT\tOPS/S\tP50\tP99\tNOTE")
	for _, rw := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\n", rw.id, rw.name, rw.opsPerSec(),
			fmtDur(rw.quantile(0.50)), fmtDur(rw.quantile(0.99)), rw.note)
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tWHAT\tMEASURED\tGOAL\tVERDICT")
	for _, t := range r.targets {
		if t.skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tskipped: %s\n", t.id, t.what, t.skipped)
			continue
		}
		if t.want == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t-\treported\n", t.id, t.what, t.got)
			continue
		}
		op, ok := "≥", t.got >= t.want
		if t.atMost {
			op, ok = "≤", t.got <= t.want
		}
		verdict := "met"
		switch {
		case r.quick:
			verdict = "not judged (--quick sizes)"
		case !ok:
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s %.2f\t%s\n", t.id, t.what, t.got, op, t.want, verdict)
	}
	tw.Flush()
	for _, n := range r.notes {
		fmt.Println("note:", n)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return strings.TrimSuffix(d.Round(time.Millisecond).String(), "0s")
}

// timeOps runs op n times and records each call's latency.
func timeOps(n int, op func(i int) error) (row, error) {
	r := row{lat: make([]time.Duration, 0, n)}
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if err := op(i); err != nil {
			return r, err
		}
		r.lat = append(r.lat, time.Since(t0))
	}
	r.total = time.Since(start)
	return r, nil
}

// ratio compares the throughput of rows a and b (a/b).
func (r *report) ratio(id, what, a, b string, want float64) {
	ra, okA := r.find(a)
	rb, okB := r.find(b)
	t := target{id: id, what: what, want: want}
	switch {
	case !okA || !okB:
		t.skipped = "a baseline did not run"
	default:
		t.got = ra.opsPerSec() / rb.opsPerSec()
	}
	r.targets = append(r.targets, t)
}
