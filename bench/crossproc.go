package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// P8: handoff across processes on SQLite, as P7 on PostgreSQL: the waiter
// learns of the release only through its Manager's watch on the database
// file.
func benchSQLiteHandoff(ctx context.Context, o options, rep *report) error {
	path := freshPath(o, "ours-crossproc")
	m, err := lock.Open(ctx, path)
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := crossProcessHandoff(ctx, o, path, m)
	if err != nil {
		return err
	}
	r.id, r.name = "P8-ours", "handoff across processes, SQLite (wake file)"
	rep.add(r)
	rep.targets = append(rep.targets,
		target{id: "P8a", what: "cross-process handoff p50, SQLite (ms)", got: ms(r.quantile(0.5)), want: 2, atMost: true},
		target{id: "P8b", what: "cross-process handoff p99, SQLite (ms)", got: ms(r.quantile(0.99)), want: 10, atMost: true})
	return waitCPU(ctx, o, path, rep)
}

// holderProcess is this binary re-run with -holder dsn: the holder of P7
// and P8 in another process, driven over its stdin and stdout.
type holderProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startHolder(ctx context.Context, dsn string) (*holderProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-holder", dsn)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &holderProcess{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// ask sends one command and returns the reply line.
func (h *holderProcess) ask(line string) (string, error) {
	if _, err := fmt.Fprintln(h.in, line); err != nil {
		return "", err
	}
	reply, err := h.out.ReadString('\n')
	return strings.TrimSpace(reply), err
}

func (h *holderProcess) stop() {
	h.in.Close()
	h.cmd.Wait()
}

// crossProcessHandoff measures o.handoffs handoffs of one entity from a
// holder in another process to a waiter of m, blocked in Acquire under the
// default retry policy. The holder releases after a random 0–50 ms;
// latency runs from just before its Release to the waiter's grant, both
// read from the machine's clock.
func crossProcessHandoff(ctx context.Context, o options, dsn string, m *lock.Manager) (row, error) {
	h, err := startHolder(ctx, dsn)
	if err != nil {
		return row{}, err
	}
	defer h.stop()
	waiter, _ := m.Session("waiter")
	rng := mrand.New(mrand.NewPCG(1, 2))
	var r row
	for range o.handoffs {
		if reply, err := h.ask("acquire"); err != nil || reply != "held" {
			return row{}, fmt.Errorf("holder process: %q, %v", reply, err)
		}
		granted := startWaiter(ctx, m, waiter, "hot")
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond))))
		reply, err := h.ask("release")
		if err != nil {
			return row{}, err
		}
		ns, err := strconv.ParseInt(strings.TrimPrefix(reply, "released "), 10, 64)
		if err != nil {
			return row{}, fmt.Errorf("holder process: %q", reply)
		}
		at, err := granted()
		if err != nil {
			return row{}, err
		}
		r.record(at.Sub(time.Unix(0, ns)))
		if _, err := waiter.Release(ctx, "hot"); err != nil {
			return row{}, err
		}
	}
	r.note = "ops/s column: 1 / mean latency"
	return r, nil
}

// waitCPU reports the CPU this process spends, as a share of one core,
// while a waiter of a Manager on dsn is blocked on an entity the holder
// process keeps, and that process commits other work at 0, 100 and 1,000
// pairs a second; and the same without a waiter. The waiter follows the
// default retry policy without its limit on retries. Nothing else runs in
// this process meanwhile.
func waitCPU(ctx context.Context, o options, dsn string, rep *report) error {
	policy := lock.DefaultRetry
	policy.MaxRetries = -1
	m, err := lock.Open(ctx, dsn, lock.WithRetry(policy))
	if err != nil {
		return err
	}
	defer m.Close()
	h, err := startHolder(ctx, dsn)
	if err != nil {
		return err
	}
	defer h.stop()
	waiter, _ := m.Session("cpu-waiter")
	span := 3 * time.Second
	if o.quick {
		span = time.Second
	}
	measure := func() float64 {
		c0, t0 := cpuTime(), time.Now()
		time.Sleep(span)
		return 100 * float64(cpuTime()-c0) / float64(time.Since(t0))
	}
	var parts []string
	for _, rate := range []int{0, 100, 1000} {
		if reply, err := h.ask("churn " + strconv.Itoa(rate)); err != nil || reply != "ok" {
			return fmt.Errorf("holder process: %q, %v", reply, err)
		}
		idle := measure()
		if reply, err := h.ask("acquire"); err != nil || reply != "held" {
			return fmt.Errorf("holder process: %q, %v", reply, err)
		}
		wctx, cancel := context.WithCancel(ctx)
		granted := startWaiter(wctx, m, waiter, "hot")
		waiting := measure()
		cancel()
		if _, err := granted(); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("waiter: %v, want context.Canceled", err)
		}
		if reply, err := h.ask("release"); err != nil || !strings.HasPrefix(reply, "released") {
			return fmt.Errorf("holder process: %q, %v", reply, err)
		}
		parts = append(parts, fmt.Sprintf("%d commits/s in the other process: %.2f%% waiting, %.2f%% not", 2*rate, waiting, idle))
		switch rate {
		case 0:
			rep.targets = append(rep.targets, target{id: "P8c", what: "CPU of one waiting Manager, no commits (% of a core)", got: waiting, want: 2, atMost: true})
		case 100:
			rep.targets = append(rep.targets, target{id: "P8d", what: "CPU of one waiting Manager, 200 commits/s elsewhere (% of a core)", got: waiting, want: 2, atMost: true})
		}
	}
	if _, err := h.ask("churn 0"); err != nil {
		return err
	}
	rep.notes = append(rep.notes, "CPU of this process with one Manager whose waiter is blocked (% of one core, "+span.String()+" each): "+strings.Join(parts, "; "))
	return nil
}

// runHolder is the holder process of P7 and P8: "acquire" takes "hot" and
// answers "held"; "release" answers "released <Unix ns>", read just before
// the release; "churn <n>" commits n TryAcquire+Release pairs a second on
// another entity, until the next churn command, and answers "ok".
func runHolder(dsn string) error {
	ctx := context.Background()
	m, err := lock.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer m.Close()
	s, _ := m.Session("holder")
	var stopChurn context.CancelFunc = func() {}
	defer func() { stopChurn() }()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := in.Text()
		if rate, ok := strings.CutPrefix(cmd, "churn "); ok {
			n, err := strconv.Atoi(rate)
			if err != nil {
				return err
			}
			stopChurn()
			stopChurn = churn(m, n)
			fmt.Println("ok")
			continue
		}
		switch cmd {
		case "acquire":
			if _, err := s.TryAcquire(ctx, "hot"); err != nil {
				return err
			}
			fmt.Println("held")
		case "release":
			at := time.Now()
			if _, err := s.Release(ctx, "hot"); err != nil {
				return err
			}
			fmt.Println("released", at.UnixNano())
		}
	}
	return in.Err()
}

// churn commits perSecond TryAcquire+Release pairs a second on "churn"
// until the returned function is called.
func churn(m *lock.Manager, perSecond int) (stop context.CancelFunc) {
	if perSecond <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, _ := m.Session("churn")
		t := time.NewTicker(time.Second / time.Duration(perSecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := s.TryAcquire(ctx, "churn"); err == nil {
				s.Release(ctx, "churn")
			}
		}
	}()
	return func() { cancel(); <-done }
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
