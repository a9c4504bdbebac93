package soak_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// report is what a worker process prints, one JSON line per interval.
type report struct {
	Proc        int     `json:"proc"`
	RSS         int64   `json:"rss"`
	Goroutines  int     `json:"goroutines"`
	Conns       int     `json:"conns"`
	TryAcquires int     `json:"try_acquires"`
	P99Ms       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	LostLeases  int64   `json:"lost_leases"`
	Stalled     int64   `json:"stalled"`
	FirstError  string  `json:"first_error,omitempty"`
	Final       bool    `json:"final,omitempty"`
}

// The worker's settings, from the environment the parent sets.
const (
	envWorker   = "ENTITYLOCK_SOAK_WORKER" // the process number
	envDB       = "ENTITYLOCK_SOAK_DB"
	envFor      = "ENTITYLOCK_SOAK_FOR"
	envInterval = "ENTITYLOCK_SOAK_INTERVAL"
)

// The workload's lease timing: short enough that abandoned leases expire
// and Do renews several times within a run.
const (
	soakTTL   = 2 * time.Second
	soakRenew = 200 * time.Millisecond
	soakSweep = 2 * time.Second
)

// latencies collects the latencies of one interval's TryAcquire calls:
// single attempts, so that the time spent waiting for a holder (Acquire,
// AcquireAll, Do) is not counted as latency.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

// take returns the interval's count and p99, and starts a new interval.
func (l *latencies) take() (int, time.Duration) {
	l.mu.Lock()
	ds := l.ds
	l.ds = nil
	l.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return len(ds), ds[(len(ds)*99)/100]
}

// runWorker runs the mix of calls for ENTITYLOCK_SOAK_FOR and reports every
// ENTITYLOCK_SOAK_INTERVAL on stdout.
func runWorker(proc int) error {
	runFor, err := time.ParseDuration(os.Getenv(envFor))
	if err != nil {
		return err
	}
	every, err := time.ParseDuration(os.Getenv(envInterval))
	if err != nil {
		return err
	}
	m, err := lock.Open(context.Background(), os.Getenv(envDB), lock.WithLogger(walLogger()),
		lock.WithTTL(soakTTL), lock.WithRenewInterval(soakRenew), lock.WithSweepInterval(soakSweep),
		lock.WithRetry(lock.RetryPolicy{MaxRetries: 5, BaseDelay: 5 * time.Millisecond, MaxDelay: 100 * time.Millisecond, Jitter: 0.2}))
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()

	var (
		lat      latencies
		errCount atomic.Int64
		stalled  atomic.Int64 // calls that ran only after their lease expired
		firstErr atomic.Value
	)
	// fail counts an error that is not contention or the end of the run.
	fail := func(err error) {
		if err == nil || errors.Is(err, lock.ErrHeld) || ctx.Err() != nil {
			return
		}
		errCount.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	timed := func(f func() error) error { // a TryAcquire
		start := time.Now()
		err := f()
		lat.add(time.Since(start))
		return err
	}
	session := func(role string) *lock.Session {
		s, err := m.Session(fmt.Sprintf("p%d-%s", proc, role))
		if err != nil {
			panic(err)
		}
		return s
	}
	pick := func(r *rand.Rand, prefix string, n int) string {
		return prefix + strconv.Itoa(r.IntN(n))
	}
	loops := map[string]func(r *rand.Rand){
		// Grants on entities never seen before, released at once: the
		// released rows the sweeper must reclaim.
		"new": func(r *rand.Rand) {
			s := session("new")
			for n := 0; ctx.Err() == nil; n++ {
				e := fmt.Sprintf("new::%d::%d", proc, n)
				fail(timed(func() error { _, err := s.TryAcquire(ctx, e); return err }))
				_, err := s.Release(ctx, e)
				fail(err)
			}
		},
		// Hot entities every process wants: waits and handoffs.
		"hot": func(r *rand.Rand) {
			s := session("hot")
			for ctx.Err() == nil {
				e := pick(r, "hot::", 8)
				_, err := s.Acquire(ctx, e)
				fail(err)
				if err == nil {
					time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
					_, err := s.Release(ctx, e)
					fail(err)
				}
			}
		},
		// Refreshes and extends of a lease the session keeps.
		"refresh": func(r *rand.Rand) {
			s := session("refresh")
			for ctx.Err() == nil {
				e := pick(r, fmt.Sprintf("mine::%d::", proc), 16)
				start := time.Now()
				fail(timed(func() error { _, err := s.TryAcquire(ctx, e); return err }))
				_, err := s.Extend(ctx, e, time.Second)
				if errors.Is(err, lock.ErrNotHeld) && time.Since(start) >= soakTTL {
					stalled.Add(1) // the lease expired before Extend ran
					continue
				}
				fail(err)
				time.Sleep(time.Millisecond)
			}
		},
		// Do with renewals: fn runs for 0.1–0.6 s under a 2 s lease
		// renewed every 200 ms.
		"do": func(r *rand.Rand) {
			s := session("do")
			for ctx.Err() == nil {
				e := pick(r, "do::", 6)
				err := s.Do(ctx, e, func(ctx context.Context, l lock.Lease) error {
					select {
					case <-ctx.Done():
					case <-time.After(time.Duration(100+r.IntN(500)) * time.Millisecond):
					}
					return nil
				})
				if errors.Is(err, lock.ErrLeaseLost) {
					continue // counted by the Manager's stats
				}
				fail(err)
			}
		},
		// AcquireAll over overlapping sets, then ReleaseAll.
		"all": func(r *rand.Rand) {
			s := session("all")
			for ctx.Err() == nil {
				set := []string{pick(r, "set::", 16), pick(r, "set::", 16), pick(r, "set::", 16)}
				_, err := s.AcquireAll(ctx, set...)
				fail(err)
				if err == nil {
					_, err := s.ReleaseAll(ctx)
					fail(err)
				}
			}
		},
		// Grants left to expire: expired rows.
		"abandon": func(r *rand.Rand) {
			s := session("abandon")
			for n := 0; ctx.Err() == nil; n++ {
				e := fmt.Sprintf("abandon::%d::%d", proc, n)
				fail(timed(func() error { _, err := s.TryAcquire(ctx, e); return err }))
				time.Sleep(5 * time.Millisecond)
			}
		},
		// Explicit purges, racing the sweepers of every process.
		"purge": func(r *rand.Rand) {
			for ctx.Err() == nil {
				_, err := m.PurgeExpired(ctx)
				fail(err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(1000+r.IntN(2000)) * time.Millisecond):
				}
			}
		},
	}
	var wg sync.WaitGroup
	seed := uint64(proc)
	for _, loop := range loops {
		seed++
		r := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
		wg.Go(func() { loop(r) })
	}

	enc := json.NewEncoder(os.Stdout)
	emit := func(final bool) error {
		n, p99 := lat.take()
		rep := report{
			Proc: proc, RSS: rss(), Goroutines: runtime.NumGoroutine(), Conns: m.DB().Stats().OpenConnections,
			TryAcquires: n, P99Ms: float64(p99) / float64(time.Millisecond),
			Errors: errCount.Load(), LostLeases: m.Stats().LostLeases, Stalled: stalled.Load(), Final: final,
		}
		if s, ok := firstErr.Load().(string); ok {
			rep.FirstError = s
		}
		return enc.Encode(rep)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
			if err := emit(false); err != nil {
				return err
			}
		}
	}
	wg.Wait()
	return emit(true)
}

// rss reads this process's resident set size from /proc.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// walLogger passes the Manager's WAL checkpoint messages that took over
// 50 ms to stderr, with the process id, and drops the rest.
func walLogger() *slog.Logger {
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(walOnly{h.WithAttrs([]slog.Attr{slog.Int("pid", os.Getpid())})})
}

type walOnly struct{ slog.Handler }

func (h walOnly) Handle(ctx context.Context, r slog.Record) error {
	slow := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "took" && a.Value.Duration() > 50*time.Millisecond {
			slow = true
		}
		return true
	})
	if !slow || !strings.Contains(r.Message, "WAL") {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}
