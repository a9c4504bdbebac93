package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
)

// runWorkers starts one demo-worker process per proc and waits for all.
// The workers run in a process group of their own, so a Ctrl-C at the
// terminal reaches this process only: it passes one SIGINT on to each
// worker, which stops its agents and stores their counts, and a second
// Ctrl-C kills them.
func runWorkers(ctx context.Context, c *demoConfig, dsn string, tables appTables, specs []agentSpec) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	byProc := make([][]string, c.procs)
	for _, s := range specs {
		byProc[s.proc] = append(byProc[s.proc], encodeSpec(s))
	}
	cmds := make([]*exec.Cmd, c.procs)
	stderrs := make([]*bytes.Buffer, c.procs)
	var mu sync.Mutex // guards the started cmds for the forced exit
	defer atForcedExit(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, cmd := range cmds {
			if cmd != nil && cmd.Process != nil {
				cmd.Process.Kill()
			}
		}
	})()
	for p := range cmds {
		// The database goes in the environment: a URL's password stays out
		// of the process list.
		args := []string{"demo-worker", "--ttl", c.ttl.String()}
		args = append(args, byProc[p]...)
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "ENTITYLOCK_DB="+dsn)
		stderrs[p] = &bytes.Buffer{}
		cmd.Stderr = stderrs[p]
		cmd.SysProcAttr = workerAttr()
		mu.Lock()
		err := cmd.Start()
		if err == nil {
			cmds[p] = cmd
		}
		mu.Unlock()
		if err != nil {
			for _, cmd := range cmds[:p] {
				cmd.Process.Kill()
				cmd.Wait()
			}
			return fmt.Errorf("start worker %d: %w", p, err)
		}
	}
	stop := context.AfterFunc(ctx, func() {
		for _, cmd := range cmds {
			cmd.Process.Signal(os.Interrupt)
		}
	})
	defer stop()
	errs := make([]error, c.procs)
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil && !(ctx.Err() != nil && interruptedExit(err)) {
			errs[p] = fmt.Errorf("worker %d: %s", p, lastLine(stderrs[p].String(), err))
		}
	}
	return firstError(errs)
}

// interruptedExit tells whether a worker ended as asked by our SIGINT.
func interruptedExit(err error) bool {
	var exitErr *exec.ExitError
	return errors.As(err, &exitErr) && exitErr.ExitCode() == exitInterrupted
}

// lastLine is a worker's last line of stderr (its error), or how it ended.
func lastLine(stderr string, err error) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if l := lines[len(lines)-1]; l != "" {
		_, msg, ok := strings.Cut(l, "demo-worker: ")
		if ok {
			return msg
		}
		return l
	}
	return err.Error()
}

// encodeSpec passes an agent to a worker as one argument:
// name,proc,entities,runFor,crashAfter,seed (durations in nanoseconds).
func encodeSpec(s agentSpec) string {
	return strings.Join([]string{s.name, strconv.Itoa(s.proc), strconv.Itoa(s.entities),
		strconv.FormatInt(int64(s.runFor), 10), strconv.FormatInt(int64(s.crashAfter), 10),
		strconv.FormatUint(s.seed, 10)}, ",")
}

func decodeSpec(arg string) (agentSpec, error) {
	f := strings.Split(arg, ",")
	if len(f) != 6 {
		return agentSpec{}, usagef("bad agent spec %q", arg)
	}
	proc, err1 := strconv.Atoi(f[1])
	entities, err2 := strconv.Atoi(f[2])
	runFor, err3 := strconv.ParseInt(f[3], 10, 64)
	crash, err4 := strconv.ParseInt(f[4], 10, 64)
	seed, err5 := strconv.ParseUint(f[5], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return agentSpec{}, usagef("bad agent spec %q: %v", arg, err)
	}
	return agentSpec{name: f[0], proc: proc, entities: entities, runFor: time.Duration(runFor),
		crashAfter: time.Duration(crash), seed: seed}, nil
}

// demoWorkerCommand runs the agents given as arguments in this process,
// with a Manager of its own on the shared database: demo --procs starts it.
func demoWorkerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "demo-worker --ttl D AGENT...",
		Short:  "Run demo agents (started by demo --procs)",
		Hidden: true,
	}
	db := dbFlag(cmd)
	ttl := cmd.Flags().Duration("ttl", 2*time.Second, "lease TTL")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		specs := make([]agentSpec, len(args))
		for i, a := range args {
			s, err := decodeSpec(a)
			if err != nil {
				return err
			}
			specs[i] = s
		}
		ctx := cmd.Context()
		m, err := openDemo(ctx, *db, lock.WithTTL(*ttl))
		if err != nil {
			return explain(*db, err)
		}
		defer m.Close()
		return explain(*db, runAgents(ctx, m.Manager, appTables{}, specs))
	}
	return cmd
}
