//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Anything but a regular file (or a PostgreSQL DSN) is refused at once: a
// FIFO would block the open forever.
func TestNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "f")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"locks"}, {"holder", "x"}, {"watch"}, {"purge"}, {"release", "--force", "x"},
		{"migrate", "version"}, {"migrate", "up"}, {"demo", "--duration", "100ms"},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			r := entitylock(t, nil, append(args, "--db", fifo)...)
			if r.code != exitFailure || !strings.Contains(r.stderr, "is not a regular file (a named pipe)") {
				t.Errorf("exit %d, stderr %q; want 1 and not a regular file", r.code, r.stderr)
			}
			oneErrorLine(t, r)
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// A second Ctrl-C ends the demo at once, even while a worker does not
// stop (here: it is suspended), and kills the workers.
func TestDemoSecondInterrupt(t *testing.T) {
	p := start(t, nil, "demo", "--db", filepath.Join(t.TempDir(), "d.db"), "--agents", "2", "--procs", "2", "--duration", "2m")
	p.waitLine(t, "grants ")
	workers := children(t, p.cmd.Process.Pid)
	if len(workers) != 2 {
		t.Fatalf("want 2 workers, found %v", workers)
	}
	if err := syscall.Kill(workers[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, w := range workers {
			syscall.Kill(w, syscall.SIGKILL)
		}
	})
	p.cmd.Process.Signal(os.Interrupt)
	p.waitLine(t, "interrupted: stopping")
	select {
	case <-p.done:
		t.Fatalf("the demo ended with a worker suspended:\n%s", p.errText())
	case <-time.After(200 * time.Millisecond):
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 10*time.Second); code != exitInterrupted {
		t.Fatalf("exit %d, want %d", code, exitInterrupted)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, w := range workers {
		for alive(w) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(w) {
			t.Errorf("worker %d still runs", w)
		}
	}
}

// children lists the pids of the process's children, from every thread.
func children(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc children list: %v", err)
	}
	var pids []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
	}
	return pids
}

// alive tells whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
