package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

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
	keep      bool
	report    string
}

func demoCommand() *cobra.Command {
	c := &demoConfig{}
	cmd := &cobra.Command{
		Use:   "demo [flags]",
		Short: "Simulate agents sharing entities, then check the result",
		Long: `Simulate agents that take turns on shared entities in one database: each
agent picks entities with a skew (a few are hot), takes a lease, updates the
entity's record in a transaction checked by the lease (Guard), and releases
it; some agents crash holding a lease, which blocks its entity until the TTL
ends. Then an independent check, made from the application's own records,
verifies that no update was lost, that fencing tokens increase per entity,
and that no two holders overlapped. Exit 0 when the check passes.

Without --db the demo uses a new SQLite file in the temporary directory and
removes it at the end. With --db, the lock tables go in that database and
the demo's own tables (demo_entities, demo_grants, demo_agents) go beside
them in an SQLite file, or in a PostgreSQL schema of their own; they are
dropped at the end. --keep keeps them (and the temporary file) and says
where they are. Ctrl-C stops the agents and prints the summary of what they
did; a second Ctrl-C quits at once.

Columns of the per-agent table:
` + legend,
		Example: `  entitylock demo
  entitylock demo --agents 16 --entities 20 --duration 30s --report run.html
  entitylock demo --procs 4 --db 'postgres://postgres@127.0.0.1/test'
  entitylock demo --json --seed 42 | jq .check`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), c, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.db, "db", "", "SQLite `file`, or PostgreSQL URL or DSN (default: a temporary file)")
	f.IntVar(&c.agents, "agents", 8, "number of agents")
	f.IntVar(&c.entities, "entities", 50, "entities, picked with a Zipf skew (a few are hot)")
	f.DurationVar(&c.duration, "duration", 10*time.Second, "how long the agents work")
	f.DurationVar(&c.ttl, "ttl", 2*time.Second, "lease TTL: how long a crash blocks its entity")
	f.Float64Var(&c.crashRate, "crash-rate", 0.125, "fraction of agents that crash holding a lease")
	f.IntVar(&c.procs, "procs", 0, "OS processes to run the agents in (0: this one)")
	f.Uint64Var(&c.seed, "seed", 0, "random seed (0: a random one)")
	f.BoolVar(&c.json, "json", false, "print the summary as JSON")
	f.BoolVar(&c.keep, "keep", false, "keep the temporary file and the demo's tables")
	f.StringVar(&c.report, "report", "", "write an HTML `file` picturing the run")
	return cmd
}

func (c *demoConfig) validate() error {
	switch {
	case c.agents < 1 || c.agents > 1000:
		return usagef("--agents %d: want 1 to 1000", c.agents)
	case c.entities < 2:
		return usagef("--entities %d: want at least 2", c.entities)
	case c.duration <= 0:
		return usagef("--duration %v: want a positive duration", c.duration)
	case c.ttl < 10*time.Millisecond:
		return usagef("--ttl %v: want at least 10ms", c.ttl)
	case !(c.crashRate >= 0 && c.crashRate <= 1):
		return usagef("--crash-rate %v: want a fraction in [0, 1]", c.crashRate)
	case c.procs < 0 || c.procs > c.agents:
		return usagef("--procs %d: want 0 to --agents (%d)", c.procs, c.agents)
	case c.procs > 0 && strings.HasPrefix(c.db, ":memory:"):
		return usageError{"--db :memory: is private to this process: --procs needs a file or PostgreSQL"}
	}
	return nil
}

func runDemo(ctx context.Context, c *demoConfig, stdout, stderr io.Writer) (err error) {
	if err := c.validate(); err != nil {
		return err
	}
	if c.seed == 0 {
		c.seed = mrand.Uint64()
	}
	if c.report != "" {
		if dir := filepath.Dir(c.report); !isDir(dir) {
			return fmt.Errorf("--report %s: no directory %s", c.report, dir)
		}
	}
	temp := c.db == ""
	if temp {
		c.db = filepath.Join(os.TempDir(), "entitylock-demo-"+rand.Text()[:8]+".db")
	}
	var tables appTables
	db, err := openDemo(ctx, c.db, lock.WithTTL(c.ttl))
	if err != nil {
		if temp {
			removeSQLite(c.db)
		}
		return err
	}
	m := db.Manager
	defer db.Close()
	defer func() {
		// Cleanup outlives an interrupt; it is what leaves the database as
		// the demo found it.
		cerr := c.cleanup(context.WithoutCancel(ctx), db, tables, temp, stderr)
		err = errors.Join(err, cerr)
	}()

	fmt.Fprintf(stderr, "entitylock demo: %d agents in %s, %d entities, %v, TTL %v,\n",
		c.agents, where(c.procs), c.entities, c.duration, c.ttl)
	fmt.Fprintf(stderr, "  crash rate %v, seed %d\n", c.crashRate, c.seed)
	fmt.Fprintf(stderr, "database: %s\n", display(c.db))
	if err := tables.create(ctx, m.DB(), c.entities); err != nil {
		return explain(c.db, err)
	}

	start := time.Now()
	specs := c.agentSpecs()
	prog := newProgress(stderr, c.duration, tables)
	stopNote := context.AfterFunc(ctx, func() {
		if context.Cause(ctx) == errSignal {
			prog.note("interrupted: stopping the agents (Ctrl-C again to quit at once)")
		}
	})
	defer stopNote()
	progCtx, stopProg := context.WithCancel(ctx)
	var progWG sync.WaitGroup
	progWG.Go(func() { prog.run(progCtx, m.DB()) })
	if c.procs > 0 {
		err = runWorkers(ctx, c, c.db, tables, specs)
	} else {
		err = runAgents(ctx, m, tables, specs)
	}
	stopProg()
	progWG.Wait()
	prog.finish(m.DB())
	if err != nil {
		return explain(c.db, err)
	}

	sum, err := summarize(context.WithoutCancel(ctx), m.DB(), c, tables)
	if err != nil {
		return explain(c.db, err)
	}
	sum.start, sum.end = start, time.Now()
	if c.json {
		err = writeJSON(stdout, sum)
	} else {
		err = sum.print(stdout)
	}
	if err != nil {
		return err
	}
	if c.report != "" {
		if err := writeReport(c.report, sum); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "report: %s\n", c.report)
	}
	switch {
	case !sum.Check.Passed:
		return errors.New("the independent check failed")
	case context.Cause(ctx) == errSignal:
		return errInterrupted
	}
	return nil
}

// cleanup drops the demo's tables and removes the temporary database,
// unless --keep, in which case it says where they are.
func (c *demoConfig) cleanup(ctx context.Context, m *database, tables appTables, temp bool, stderr io.Writer) error {
	if c.keep {
		fmt.Fprintf(stderr, "kept: %s (tables demo_entities, demo_grants, demo_agents)\n", display(c.db))
		return nil
	}
	if temp {
		m.Close()
		return removeSQLite(c.db)
	}
	// Leases of agents that crashed would block their entities until
	// they expire: the demo is over, so release them.
	var errs []error
	for i := range c.agents {
		if s, err := m.Session(agentName(i)); err == nil {
			_, err = s.ReleaseAll(ctx)
			errs = append(errs, err)
		}
	}
	errs = append(errs, tables.drop(ctx, m.DB()))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up the demo's tables: %w", explain(c.db, err))
	}
	return nil
}

// removeSQLite removes an SQLite database file, its -wal, -shm and
// -journal, and the lock package's -wake.
func removeSQLite(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal", path + "-wake"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func where(procs int) string {
	if procs == 0 {
		return "one process"
	}
	return fmt.Sprintf("%d processes", procs)
}

// agentSpecs names the agents, spreads them over the processes, and picks
// which crash and when (some time in the first half of the run).
func (c *demoConfig) agentSpecs() []agentSpec {
	rng := mrand.New(mrand.NewPCG(c.seed, 1))
	crashers := int(c.crashRate*float64(c.agents) + 0.5)
	order := rng.Perm(c.agents)
	specs := make([]agentSpec, c.agents)
	for i := range specs {
		specs[i] = agentSpec{
			name:       agentName(i),
			entities:   c.entities,
			runFor:     c.duration,
			crashAfter: -1,
			seed:       rng.Uint64(),
		}
		if c.procs > 0 {
			specs[i].proc = i % c.procs
		}
	}
	for _, i := range order[:crashers] {
		specs[i].crashAfter = time.Duration(rng.Int64N(int64(c.duration/2) + 1))
	}
	return specs
}

func agentName(i int) string { return fmt.Sprintf("agent-%02d", i) }

func runAgents(ctx context.Context, m *lock.Manager, tables appTables, specs []agentSpec) error {
	start := time.Now()
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() { errs[i] = runAgent(ctx, m, tables, spec, start) })
	}
	wg.Wait()
	return firstError(errs)
}

// firstError returns the first error of errs, saying how many others there
// were, so that agents failing alike make one line.
func firstError(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w (and %d more like it)", first, n-1)
	}
	return first
}
