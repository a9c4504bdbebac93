package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// B1: the largest -wal file seen while one process makes walOps grants on
// distinct entities, then refreshes and releases each of them.
func benchWAL(ctx context.Context, o options, rep *report) error {
	n := 40_000
	if o.quick {
		n = 4000
	}
	path := freshPath(o, "ours-wal")
	m, err := lock.Open(ctx, path)
	if err != nil {
		return err
	}
	defer m.Close()
	s, _ := m.Session("wal")
	var largest int64
	sample := func() {
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	phases := []struct {
		id, name string
		op       func(entity string) error
	}{
		{"B1-grant", "grants on new entities", func(e string) error { _, err := s.TryAcquire(ctx, e); return err }},
		{"B1-refresh", "refreshes", func(e string) error { _, err := s.TryAcquire(ctx, e); return err }},
		{"B1-release", "releases", func(e string) error { _, err := s.Release(ctx, e); return err }},
	}
	for _, p := range phases {
		r, err := timeOps(n, func(i int) error {
			if i%100 == 0 {
				sample()
			}
			return p.op("entity::" + strconv.Itoa(i))
		})
		if err != nil {
			return err
		}
		sample()
		r.id, r.name = p.id, fmt.Sprintf("SQLite: %d %s, one process", n, p.name)
		r.note = fmt.Sprintf("largest -wal so far %.1f MiB", float64(largest)/(1<<20))
		rep.add(r)
	}
	rep.targets = append(rep.targets, target{id: "B1", what: "largest -wal (MiB) over the three phases", got: float64(largest) / (1 << 20), want: 64, atMost: true})
	return nil
}

// B2: a purge of purgeRows released rows, while one goroutine makes
// TryAcquire+Release pairs on another entity: the slowest pair.
func benchPurgeStall(ctx context.Context, o options, rep *report) error {
	rows := 200_000
	if o.quick {
		rows = 20_000
	}
	m, err := openOurs(ctx, o, "ours-purge", lock.WithSweepInterval(0))
	if err != nil {
		return err
	}
	if err := timePurgeStall(ctx, m, rows, "B2-sqlite", "SQLite", rep); err != nil {
		m.Close()
		return err
	}
	m.Close()
	_, pm, done, err := openPostgres(ctx, o)
	if err != nil {
		rep.notes = append(rep.notes, "B2 PostgreSQL skipped: "+err.Error())
		return nil
	}
	defer done()
	return timePurgeStall(ctx, pm, rows, "B2-postgres", "PostgreSQL", rep)
}

func timePurgeStall(ctx context.Context, m *lock.Manager, rows int, id, engine string, rep *report) error {
	filler, _ := m.Session("filler")
	const chunk = 1000
	for i := 0; i < rows; i += chunk {
		names := make([]string, chunk)
		for k := range names {
			names[k] = "purge::" + strconv.Itoa(i+k)
		}
		if _, err := filler.AcquireAll(ctx, names...); err != nil {
			return err
		}
		if _, err := filler.ReleaseAll(ctx); err != nil {
			return err
		}
	}
	s, _ := m.Session("pairs")
	pair := func() (time.Duration, error) {
		t0 := time.Now()
		if _, err := s.TryAcquire(ctx, "purge::probe"); err != nil {
			return 0, err
		}
		_, err := s.Release(ctx, "purge::probe")
		return time.Since(t0), err
	}
	var (
		purged   int
		purgeErr error
		took     time.Duration
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		start := time.Now()
		purged, purgeErr = m.PurgeExpired(ctx)
		took = time.Since(start)
	})
	r := row{id: id, name: fmt.Sprintf("%s: TryAcquire+Release pairs during a purge of %d released rows", engine, rows)}
	start := time.Now()
	for running := true; running; {
		select {
		case <-stop:
			running = false
		default:
		}
		d, err := pair()
		if err != nil {
			return err
		}
		r.lat = append(r.lat, d)
	}
	r.total = time.Since(start)
	wg.Wait()
	if purgeErr != nil {
		return purgeErr
	}
	// The same pairs for as long again without a purge: the noise floor of
	// this machine at this time.
	control := row{id: id + "-control", name: fmt.Sprintf("%s: the same pairs for as long, without a purge", engine)}
	for start := time.Now(); time.Since(start) < r.total; {
		d, err := pair()
		if err != nil {
			return err
		}
		control.record(d)
	}
	control.note = fmt.Sprintf("slowest pair %s; %d over 20ms", fmtDur(slices.Max(control.lat)), over(control.lat, 20*time.Millisecond))
	slowest := slices.Max(r.lat)
	r.note = fmt.Sprintf("purged %d rows in %s; slowest pair %s; %d over 20ms", purged, fmtDur(took), fmtDur(slowest), over(r.lat, 20*time.Millisecond))
	rep.add(r)
	rep.add(control)
	rep.targets = append(rep.targets, target{id: id, what: "slowest acquire+release during the purge (ms)", got: ms(slowest), want: 100, atMost: true})
	return nil
}

// over counts the latencies above d.
func over(lat []time.Duration, d time.Duration) int {
	n := 0
	for _, l := range lat {
		if l > d {
			n++
		}
	}
	return n
}
