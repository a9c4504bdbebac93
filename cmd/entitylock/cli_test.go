package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
	"github.com/entitylock/entitylock/schema"
)

func assertFits80(t *testing.T, text string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns:\n%s", n, l)
		}
	}
}

func oneErrorLine(t *testing.T, r result) {
	t.Helper()
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("want one error line, got:\n%s", r.stderr)
	}
	for _, layer := range []string{"lock:", "sqlite3:", "_pragma", "lstat", "journal_mode", "failed to connect"} {
		if strings.Contains(r.stderr, layer) {
			t.Errorf("error shows an internal layer (%q):\n%s", layer, r.stderr)
		}
	}
}

func TestFlagsHelpVersionCompletion(t *testing.T) {
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string
		stderr   []string
	}{
		{"unknown flag named as given", []string{"locks", "--bogus"}, 2, nil, []string{"unknown flag: --bogus", "Usage:"}},
		{"help has examples", []string{"holder", "--help"}, 0, []string{"Examples:", "entitylock holder --db app.db invoice::42", "3\nwhen it is free"}, nil},
		{"root help has the exit codes", []string{"--help"}, 0, []string{"Exit status:", "130", "watch"}, nil},
		{"version", []string{"--version"}, 0, []string{"entitylock ", "go1."}, nil},
		{"completion bash", []string{"completion", "bash"}, 0, []string{"bash completion", "entitylock"}, nil},
		{"completion zsh", []string{"completion", "zsh"}, 0, []string{"#compdef entitylock"}, nil},
		{"completion fish", []string{"completion", "fish"}, 0, []string{"complete -c entitylock"}, nil},
		{"no command", nil, 2, nil, []string{"no command given", "Usage:"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := entitylock(t, []string{"ENTITYLOCK_DB="}, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// Every command's help fits 80 columns.
func TestHelpFits80(t *testing.T) {
	for _, args := range [][]string{{}, {"demo"}, {"locks"}, {"holder"}, {"watch"}, {"release"}, {"purge"},
		{"migrate"}, {"migrate", "up"}, {"migrate", "down"}, {"migrate", "version"}, {"migrate", "force"}} {
		r := entitylock(t, nil, append(args, "--help")...)
		if r.code != 0 {
			t.Fatalf("%v --help: exit %d", args, r.code)
		}
		assertFits80(t, r.stdout)
	}
}

// The README's exit status table lists what the command's help lists.
func TestExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{exitOK, exitFailure, exitUsage, exitNo, exitInterrupted} {
		if !strings.Contains(exitCodeHelp, "\n  "+strconv.Itoa(code)+" ") {
			t.Errorf("help lacks exit status %d", code)
		}
		if !bytes.Contains(readme, []byte("| "+strconv.Itoa(code)+" |")) {
			t.Errorf("README lacks exit status %d in its table", code)
		}
	}
}

// journalMode reads the file's journal mode from its header: bytes 18 and
// 19 are 2 in WAL mode, 1 in rollback journal modes.
func journalMode(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 100 {
		t.Fatalf("read %s: %v", path, err)
	}
	if b[18] == 2 {
		return "wal"
	}
	return "rollback"
}

// Read-only commands create nothing beside a WAL file; writing commands
// keep the journal mode of a file they did not create.
func TestOperatorCommandsLeaveTheFileAsItWas(t *testing.T) {
	t.Run("read-only on a WAL file", func(t *testing.T) {
		path := prepare(t, locktest.SQLite())
		before := testkit.DirNames(t, filepath.Dir(path))
		if journalMode(t, path) != "wal" || len(before) != 1 {
			t.Fatalf("want a lone WAL file to start with, have %s and %v", journalMode(t, path), before)
		}
		for _, args := range [][]string{{"locks"}, {"locks", "--all", "--json"}, {"holder", "a"}, {"holder", "zzz"}, {"migrate", "version"}, {"watch"}} {
			r := entitylock(t, []string{"ENTITYLOCK_DB=" + path}, args...)
			if r.code != exitOK && r.code != exitNo {
				t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
			}
			if after := testkit.DirNames(t, filepath.Dir(path)); !slices.Equal(before, after) {
				t.Errorf("%v: files %v, want %v", args, after, before)
			}
		}
	})
	t.Run("writes keep a rollback journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		m, err := lock.Open(t.Context(), "file:"+path+"?_pragma=journal_mode(delete)", lock.WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := m.Session("s1")
		for _, e := range []string{"a", "b"} {
			if _, err := s.TryAcquire(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
		m.Close()
		if journalMode(t, path) != "rollback" {
			t.Fatal("want a rollback-journal file to start with")
		}
		for _, args := range [][]string{{"release", "--force", "a"}, {"purge"}, {"release", "--session", "s1"}, {"locks"},
			{"demo", "--db", path, "--agents", "2", "--procs", "2", "--duration", "2s"}} {
			if r := entitylock(t, []string{"ENTITYLOCK_DB=" + path}, args...); r.code != 0 {
				t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
			}
			if got := journalMode(t, path); got != "rollback" {
				t.Errorf("%v switched the file to %s", args, got)
			}
		}
		if got := testkit.DirNames(t, filepath.Dir(path)); !slices.Equal(got, []string{"app.db"}) {
			t.Errorf("files %v, want app.db alone", got)
		}
	})
}

func TestWatchSnapshot(t *testing.T) {
	path := prepare(t, locktest.SQLite())
	r := entitylock(t, nil, "watch", "--db", path)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "3 live lease(s)") || !strings.Contains(lines[2], "TIME LEFT") ||
		!strings.HasPrefix(lines[3], "a ") || strings.Contains(r.stdout, "\033") {
		t.Errorf("want one plain snapshot of 3 leases, got:\n%q", r.stdout)
	}
	assertFits80(t, r.stdout)
	r = entitylock(t, nil, "watch", "--db", path, "--session", "s2")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[3], "c ") {
		t.Errorf("--session s2: exit %d:\n%s", r.code, r.stdout)
	}
}

// process is the binary running in the background, its stderr read line by
// line.
type process struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr strings.Builder
	lines  chan string
	done   chan struct{}
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), lines: make(chan string, 1000), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	p.cmd.Stdout = &p.stdout
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// waitLine waits for a line of stderr that contains s.
func (p *process) waitLine(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("stderr ended without %q:\n%s", s, p.errText())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q on stderr after a minute:\n%s", s, p.errText())
		}
	}
}

func (p *process) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// wait waits for the process to end, at most d, and returns its status.
func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("still running after %v:\n%s", d, p.errText())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Ctrl-C stops every agent, in this process or in workers, and prints the
// summary, whose totals agree with its check; the exit status says it was
// interrupted.
func TestDemoInterrupt(t *testing.T) { engines(t, demoInterrupt) }

func demoInterrupt(t *testing.T, b locktest.Backend) {
	for _, procs := range []string{"0", "2"} {
		t.Run("procs "+procs, func(t *testing.T) {
			p := start(t, nil, "demo", "--json", "--db", b.NewDSN(t), "--agents", "4", "--entities", "5",
				"--duration", "2m", "--ttl", "300ms", "--crash-rate", "0.25", "--procs", procs)
			p.waitLine(t, "grants ")
			if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, time.Minute); code != exitInterrupted {
				t.Fatalf("exit %d, want %d:\n%s", code, exitInterrupted, p.errText())
			}
			var sum summary
			if err := json.Unmarshal(p.stdout.Bytes(), &sum); err != nil {
				t.Fatalf("no summary: %v\n%s\n%s", err, p.stdout.String(), p.errText())
			}
			if !sum.Check.Passed || sum.Totals.Grants != int64(sum.Check.Grants) || sum.Check.Grants == 0 {
				t.Errorf("check %+v, totals %d grants: want a pass whose totals agree", sum.Check, sum.Totals.Grants)
			}
			if !strings.Contains(p.errText(), "interrupted: stopping the agents") {
				t.Errorf("stderr lacks the interrupt note:\n%s", p.errText())
			}
		})
	}
}

// Demo errors are one line, said before anything else, without the layers
// they went through.
func TestDemoErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, db, want string
	}{
		{"text file", text, "is not an SQLite database"},
		{"missing directory", filepath.Join(dir, "no", "such", "d.db"), "no directory"},
		{"closed port", "postgres://postgres:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", "cannot connect to postgres://postgres:xxxxx@127.0.0.1:1/x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := entitylock(t, nil, "demo", "--db", tt.db, "--duration", "100ms")
			if r.code != exitFailure || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
			oneErrorLine(t, r)
			if strings.Contains(r.stderr, "hunter2") {
				t.Errorf("the password shows: %s", r.stderr)
			}
		})
	}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("files left: %v", got)
	}
}

// Without --db the demo's temporary file is removed, unless --keep, which
// says where it is; its output fits 80 columns.
func TestDemoTemporaryFile(t *testing.T) {
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp}
	args := []string{"demo", "--agents", "3", "--entities", "4", "--duration", "300ms", "--ttl", "100ms"}
	r := entitylock(t, env, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := testkit.DirNames(t, tmp); len(got) != 0 {
		t.Errorf("left in the temporary directory: %v", got)
	}
	assertFits80(t, r.stdout+r.stderr)
	for _, col := range []string{"GRANTS", "WAITED", "GAVE UP", "TAKEOVERS", "LOST", "REJECTED", "CRASHED"} {
		if !strings.Contains(r.stdout, "\n  "+col+" ") {
			t.Errorf("no legend for %s:\n%s", col, r.stdout)
		}
	}
	lines := strings.Split(r.stderr, "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" && lines[i] == lines[i-1] {
			t.Errorf("line %q repeats:\n%s", lines[i], r.stderr)
		}
	}

	r = entitylock(t, env, append(args, "--keep")...)
	got := testkit.DirNames(t, tmp)
	if r.code != 0 || len(got) != 1 || !strings.Contains(r.stderr, "kept: "+filepath.Join(tmp, got[0])) {
		t.Errorf("--keep: exit %d, files %v\nstdout:\n%s\nstderr:\n%s", r.code, got, r.stdout, r.stderr)
	}
}

// With --db, the demo's tables go beside the lock tables and are removed
// unless --keep; the leases of its crashed agents are released.
func TestDemoLeavesTheDatabaseAsItFoundIt(t *testing.T) { engines(t, demoLeavesTheDatabase) }

func demoLeavesTheDatabase(t *testing.T, b locktest.Backend) {
	dsn := b.NewDSN(t)
	raw := testkit.DB(t, dsn)
	// count counts the demo's tables that exist, in the same SQL on every
	// engine: a table that does not exist fails the query.
	count := func() int {
		t.Helper()
		n := 0
		for _, table := range []string{"demo_entities", "demo_grants", "demo_agents"} {
			if rows, err := raw.Query(`SELECT 1 FROM ` + table + ` WHERE 1 = 0`); err == nil {
				rows.Close()
				n++
			}
		}
		return n
	}
	args := []string{"demo", "--db", dsn, "--agents", "4", "--entities", "4", "--duration", "500ms", "--ttl", "1h", "--crash-rate", "0.5", "--seed", "3"}
	r := entitylock(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := count(); n != 0 {
		t.Errorf("%d demo tables left", n)
	}
	if r := entitylock(t, nil, "locks", "--db", dsn, "--json"); r.code != 0 || len(leaseEntities(t, r.stdout)) != 0 {
		t.Errorf("leases left (exit %d): %s %s", r.code, r.stdout, r.stderr)
	}

	r = entitylock(t, nil, append(args, "--keep")...)
	if r.code != 0 || !strings.Contains(r.stderr, "kept: ") {
		t.Fatalf("--keep: exit %d: %s", r.code, r.stderr)
	}
	if n := count(); n != 3 {
		t.Errorf("--keep: %d demo tables, want 3\n%s", n, r.stderr)
	}
}

// The report is one self-contained file whose timeline draws a lane per hot
// entity with bars that never overlap, and whose table has the summary's
// totals.
func TestDemoReport(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "run.html")
	r := entitylock(t, nil, "demo", "--json", "--report", report, "--db", filepath.Join(dir, "d.db"), "--agents", "6",
		"--entities", "12", "--duration", "1500ms", "--ttl", "200ms", "--crash-rate", "0.34", "--procs", "2", "--seed", "11")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var sum summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	rep := parseReport(t, html)
	if diff := rep.check(sum); diff != "" {
		t.Error(diff)
	}
}

func TestSeedIsAJSONString(t *testing.T) {
	r := entitylock(t, nil, "demo", "--json", "--seed", "3106547724355993497", "--agents", "2", "--duration", "200ms", "--db", ":memory:")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["seed"] != "3106547724355993497" {
		t.Errorf("seed %#v, want the string \"3106547724355993497\"", raw["seed"])
	}
}

// migrate force clears a dirty mark, as golang-migrate's force does.
func TestMigrateForce(t *testing.T) { engines(t, migrateForce) }

func migrateForce(t *testing.T, b locktest.Backend) {
	dsn := prepare(t, b)
	env := []string{"ENTITYLOCK_DB=" + dsn}
	if _, err := testkit.DB(t, dsn).Exec(`UPDATE ` + schema.MigrationsTable + ` SET dirty = true`); err != nil {
		t.Fatal(err)
	}
	if r := entitylock(t, env, "locks"); r.code != exitFailure || !strings.Contains(r.stderr, "dirty") || !strings.Contains(r.stderr, "migrate force") {
		t.Errorf("locks on a dirty schema: exit %d, %q", r.code, r.stderr)
	}
	latest := strconv.FormatUint(uint64(schema.Latest()), 10)
	r := entitylock(t, env, "migrate", "force", latest, "--json")
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["version"] != float64(schema.Latest()) || v["dirty"] != false {
		t.Fatalf("force %s: exit %d: %q %q", latest, r.code, r.stdout, r.stderr)
	}
	if r := entitylock(t, env, "locks", "--json"); r.code != 0 || len(leaseEntities(t, r.stdout)) != 3 {
		t.Errorf("locks after force: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := entitylock(t, env, "migrate", "force", "0"); r.code != 0 || !strings.Contains(r.stdout, "version 0") {
		t.Errorf("force 0: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	if r := entitylock(t, env, "migrate", "up"); r.code != 1 {
		t.Errorf("up over tables forced to version 0: exit %d, want 1 (the tables exist): %q", r.code, r.stderr)
	}
}

// Ctrl-C ends an operator command stuck on a server that never answers.
func TestInterruptHungConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, never answered
		}
	}()
	p := start(t, nil, "locks", "--db", "postgres://postgres@"+ln.Addr().String()+"/x?sslmode=disable&connect_timeout=300")
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(time.Minute):
		t.Fatal("the command never connected")
	}
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 10*time.Second); code != exitInterrupted || !strings.Contains(p.errText(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want %d and interrupted", code, p.errText(), exitInterrupted)
	}
}
