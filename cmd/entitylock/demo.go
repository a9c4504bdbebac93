package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/entitylock/entitylock/lock"
)

type demoConfig struct {
	db        string
	agents    int
	entities  int
	duration  time.Duration
	ttl       time.Duration
	crashRate float64
	procs     int
	seed      uint64
	json      bool
}

func demoFlags(fs *flag.FlagSet) *demoConfig {
	c := &demoConfig{}
	fs.StringVar(&c.db, "db", "", "SQLite database `file` or postgres:// URL (default: a new file in the temp directory)")
	fs.IntVar(&c.agents, "agents", 8, "number of agents")
	fs.IntVar(&c.entities, "entities", 50, "number of entities, picked with a Zipf skew so a few are hot")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the agents work")
	fs.DurationVar(&c.ttl, "ttl", 2*time.Second, "lease TTL: how long a crashed agent's lease blocks its entity")
	fs.Float64Var(&c.crashRate, "crash-rate", 0.125, "fraction of agents that crash holding a lease, in [0, 1]")
	fs.IntVar(&c.procs, "procs", 0, "run the agents in this many OS processes (0: goroutines of this process)")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0: a random one)")
	fs.BoolVar(&c.json, "json", false, "print the summary as JSON")
	return c
}

func (c *demoConfig) validate() error {
	switch {
	case c.agents < 1 || c.agents > 1000:
		return usageError{fmt.Sprintf("--agents %d: want 1 to 1000", c.agents)}
	case c.entities < 2:
		return usageError{fmt.Sprintf("--entities %d: want at least 2", c.entities)}
	case c.duration <= 0:
		return usageError{fmt.Sprintf("--duration %v: want a positive duration", c.duration)}
	case c.ttl < 10*time.Millisecond:
		return usageError{fmt.Sprintf("--ttl %v: want at least 10ms", c.ttl)}
	case !(c.crashRate >= 0 && c.crashRate <= 1):
		return usageError{fmt.Sprintf("--crash-rate %v: want a fraction in [0, 1]", c.crashRate)}
	case c.procs < 0 || c.procs > c.agents:
		return usageError{fmt.Sprintf("--procs %d: want 0 to --agents (%d)", c.procs, c.agents)}
	}
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[flags]", "Simulate agents that lock and update shared entities in one database, then check that no update was lost", stderr)
	c := demoFlags(fs)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if err := c.validate(); err != nil {
		return err
	}
	if c.seed == 0 {
		c.seed = mrand.Uint64()
	}
	if c.db == "" {
		c.db = filepath.Join(os.TempDir(), "entitylock-demo-"+rand.Text()[:8]+".db")
	}
	fmt.Fprintf(stderr, "entitylock demo: %d agents in %s on %d entities for %v, TTL %v, crash rate %v, seed %d\n",
		c.agents, where(c.procs), c.entities, c.duration, c.ttl, c.crashRate, c.seed)
	fmt.Fprintf(stderr, "database: %s\n", display(c.db))

	m, err := lock.Open(ctx, c.db, lock.WithTTL(c.ttl))
	if err != nil {
		return err
	}
	defer m.Close()
	if err := prepareDemo(ctx, m.DB(), c.entities); err != nil {
		return err
	}

	specs := c.agentSpecs(time.Now())
	prog := newProgress(stderr, c.duration)
	progCtx, stopProg := context.WithCancel(ctx)
	var progWG sync.WaitGroup
	progWG.Go(func() { prog.run(progCtx, m.DB()) })

	if c.procs > 0 {
		err = runWorkers(ctx, c, specs, stderr)
	} else {
		err = runAgents(ctx, m, specs)
	}
	stopProg()
	progWG.Wait()
	prog.finish(m.DB())
	if err != nil {
		return err
	}

	sum, err := summarize(context.WithoutCancel(ctx), m.DB(), c)
	if err != nil {
		return err
	}
	if c.json {
		err = writeJSON(stdout, sum)
	} else {
		err = sum.print(stdout)
	}
	if err != nil {
		return err
	}
	if !sum.Check.Passed {
		return errors.New("the independent check failed")
	}
	return nil
}

func where(procs int) string {
	if procs == 0 {
		return "one process"
	}
	return fmt.Sprintf("%d processes", procs)
}

func prepareDemo(ctx context.Context, db *sql.DB, entities int) error {
	if _, err := db.ExecContext(ctx, demoSchema); err != nil {
		return fmt.Errorf("create demo tables: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Each run starts its application tables afresh, so that its summary and
	// check cover this run alone (leases of an earlier run's crashed agents
	// may still be live, and are waited for like any other).
	for _, table := range []string{"demo_entities", "demo_grants", "demo_agents"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return err
		}
	}
	for i := range entities {
		if _, err := tx.ExecContext(ctx, `INSERT INTO demo_entities (entity) VALUES ($1)`, entityName(i)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// agentSpecs names the agents, spreads them over the processes, and picks
// which crash and when (some time in the first half of the run).
func (c *demoConfig) agentSpecs(start time.Time) []agentSpec {
	rng := mrand.New(mrand.NewPCG(c.seed, 1))
	crashers := int(c.crashRate*float64(c.agents) + 0.5)
	order := rng.Perm(c.agents)
	specs := make([]agentSpec, c.agents)
	for i := range specs {
		specs[i] = agentSpec{
			name:     fmt.Sprintf("agent-%02d", i),
			entities: c.entities,
			until:    start.Add(c.duration),
			seed:     rng.Uint64(),
		}
		if c.procs > 0 {
			specs[i].proc = i % c.procs
		}
	}
	for _, i := range order[:crashers] {
		specs[i].crashAt = start.Add(time.Duration(rng.Int64N(int64(c.duration/2) + 1)))
	}
	return specs
}

func runAgents(ctx context.Context, m *lock.Manager, specs []agentSpec) error {
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() { errs[i] = runAgent(ctx, m, spec) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runWorkers starts one demo-worker process per proc and waits for all.
func runWorkers(ctx context.Context, c *demoConfig, specs []agentSpec, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	byProc := make([][]string, c.procs)
	for _, s := range specs {
		byProc[s.proc] = append(byProc[s.proc], encodeSpec(s))
	}
	cmds := make([]*exec.Cmd, c.procs)
	for p := range cmds {
		// The database goes in the environment: a URL's password stays out
		// of the process list.
		args := []string{"demo-worker", "--ttl", c.ttl.String()}
		args = append(args, byProc[p]...)
		cmds[p] = exec.CommandContext(ctx, exe, args...)
		cmds[p].Env = append(os.Environ(), "ENTITYLOCK_DB="+c.db)
		cmds[p].Stderr = stderr
		if err := cmds[p].Start(); err != nil {
			return fmt.Errorf("start worker %d: %w", p, err)
		}
	}
	var errs []error
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// encodeSpec passes an agent to a worker as one argument:
// name,proc,entities,until,crashAt,seed (times in Unix nanoseconds).
func encodeSpec(s agentSpec) string {
	var crash int64
	if !s.crashAt.IsZero() {
		crash = s.crashAt.UnixNano()
	}
	return strings.Join([]string{s.name, strconv.Itoa(s.proc), strconv.Itoa(s.entities),
		strconv.FormatInt(s.until.UnixNano(), 10), strconv.FormatInt(crash, 10),
		strconv.FormatUint(s.seed, 10)}, ",")
}

func decodeSpec(arg string) (agentSpec, error) {
	f := strings.Split(arg, ",")
	if len(f) != 6 {
		return agentSpec{}, usageError{fmt.Sprintf("bad agent spec %q", arg)}
	}
	proc, err1 := strconv.Atoi(f[1])
	entities, err2 := strconv.Atoi(f[2])
	until, err3 := strconv.ParseInt(f[3], 10, 64)
	crash, err4 := strconv.ParseInt(f[4], 10, 64)
	seed, err5 := strconv.ParseUint(f[5], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return agentSpec{}, usageError{fmt.Sprintf("bad agent spec %q: %v", arg, err)}
	}
	s := agentSpec{name: f[0], proc: proc, entities: entities, until: time.Unix(0, until), seed: seed}
	if crash != 0 {
		s.crashAt = time.Unix(0, crash)
	}
	return s, nil
}

// runDemoWorker runs the agents given as arguments in this process, with a
// Manager of its own on the shared file: demo --procs starts it.
func runDemoWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo-worker", "--ttl D AGENT...", "Run demo agents (started by demo --procs)", stderr)
	db := dbFlag(fs)
	ttl := fs.Duration("ttl", 2*time.Second, "lease TTL")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	specs := make([]agentSpec, fs.NArg())
	for i, a := range fs.Args() {
		s, err := decodeSpec(a)
		if err != nil {
			return err
		}
		specs[i] = s
	}
	m, err := lock.Open(ctx, *db, lock.WithTTL(*ttl))
	if err != nil {
		return err
	}
	defer m.Close()
	return runAgents(ctx, m, specs)
}
