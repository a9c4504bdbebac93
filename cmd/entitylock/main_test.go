package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
	"github.com/entitylock/entitylock/schema"
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entitylock-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "entitylock")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("building the command: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// entitylock runs the built binary with args and the environment env.
func entitylock(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// The race runtime sleeps a second at exit by default.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running %v: %v", args, err)
	}
	return r
}

// engines runs test on SQLite and, when $ENTITYLOCK_POSTGRES_DSN is set, on
// a fresh PostgreSQL schema.
func engines(t *testing.T, test func(t *testing.T, b locktest.Backend)) {
	t.Run("sqlite", func(t *testing.T) { test(t, locktest.SQLite()) })
	t.Run("postgres", func(t *testing.T) { test(t, locktest.Postgres(t)) })
}

func TestDemoPassesItsOwnCheck(t *testing.T) { engines(t, demoPassesItsOwnCheck) }

func demoPassesItsOwnCheck(t *testing.T, b locktest.Backend) {
	tests := []struct {
		name string
		args []string
	}{
		{"goroutines with crashes", []string{"--agents", "4", "--entities", "6", "--duration", "1500ms", "--ttl", "300ms", "--crash-rate", "0.5"}},
		{"two processes with crashes", []string{"--agents", "4", "--entities", "6", "--duration", "1500ms", "--ttl", "300ms", "--crash-rate", "0.5", "--procs", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := b.NewDSN(t)
			args := append([]string{"demo", "--json", "--seed", "7", "--db", db}, tt.args...)
			r := entitylock(t, nil, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			var sum summary
			if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, r.stdout)
			}
			if !sum.Check.Passed || sum.Check.Grants == 0 || sum.Totals.Crashed != 2 || len(sum.PerAgent) != 4 {
				t.Errorf("summary: passed %v, %d grants, %d crashed, %d agents; want a pass with grants, 2 crashed, 4 agents",
					sum.Check.Passed, sum.Check.Grants, sum.Totals.Crashed, len(sum.PerAgent))
			}
			if !strings.Contains(r.stderr, "database: "+db) || !strings.Contains(r.stderr, "grants ") {
				t.Errorf("stderr lacks the database line or progress:\n%s", r.stderr)
			}
		})
	}
}

// The demo's check must notice a lost update: corrupt a counter and
// summarize the same database again.
func TestDemoCheckCatchesLostUpdate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	if r := entitylock(t, nil, "demo", "--db", db, "--keep", "--agents", "2", "--entities", "3", "--duration", "300ms", "--crash-rate", "0"); r.code != 0 {
		t.Fatalf("demo: exit %d: %s", r.code, r.stderr)
	}
	raw := openSQL(t, db)
	if _, err := raw.Exec(`UPDATE demo_entities SET updates = updates - 1 WHERE entity = (SELECT entity FROM demo_grants WHERE wrote = 1 LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	sum, err := summarize(t.Context(), raw, &demoConfig{db: db}, appTables{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Check.Passed || len(sum.Check.Failures) != 1 || !strings.Contains(sum.Check.Failures[0], "lost updates") {
		t.Errorf("check = %+v; want one lost-update failure", sum.Check)
	}
}

func openSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := driver.Open("file:" + path + "?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// prepare makes a database with live leases of s1 on a, b and of s2 on c,
// and an expired lease of s1 on old.
func prepare(t *testing.T, b locktest.Backend) string {
	t.Helper()
	path := b.NewDSN(t)
	past := func() time.Time { return time.Now().Add(-3 * time.Hour) }
	for _, l := range []struct {
		clock           func() time.Time
		session, entity string
	}{
		{past, "s1", "old"}, {time.Now, "s1", "a"}, {time.Now, "s1", "b"}, {time.Now, "s2", "c"},
	} {
		m, err := lock.Open(t.Context(), path, lock.WithClock(l.clock), lock.WithTTL(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := m.Session(l.session)
		if _, err := s.TryAcquire(t.Context(), l.entity); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	return path
}

func leaseEntities(t *testing.T, out string) []string {
	t.Helper()
	var ls []leaseJSON
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("not a JSON lease list: %v\n%s", err, out)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Entity)
	}
	return names
}

func TestOperatorCommands(t *testing.T) { engines(t, operatorCommands) }

func operatorCommands(t *testing.T, b locktest.Backend) {
	path := prepare(t, b)
	env := []string{"ENTITYLOCK_DB=" + path}

	t.Run("locks table", func(t *testing.T) {
		r := entitylock(t, env, "locks")
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "ENTITY") || !strings.HasPrefix(lines[1], "a ") ||
			!strings.Contains(lines[3], "s2") || !strings.Contains(r.stdout, "ago") || !strings.Contains(r.stdout, "in ") ||
			!strings.HasPrefix(lines[4], "(times relative to ") {
			t.Errorf("unexpected table:\n%s", r.stdout)
		}
		assertFits80(t, r.stdout)
	})
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"locks json", []string{"locks", "--json"}, []string{"a", "b", "c"}},
		{"locks all", []string{"locks", "--all", "--json"}, []string{"a", "b", "c", "old"}},
		{"locks session", []string{"locks", "--session", "s1", "--json"}, []string{"a", "b"}},
		{"locks session all", []string{"locks", "--all", "--session", "s1", "--json"}, []string{"a", "b", "old"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := entitylock(t, env, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if diff := cmp.Diff(tt.want, leaseEntities(t, r.stdout)); diff != "" {
				t.Errorf("entities (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("locks all counts reclaimable rows", func(t *testing.T) {
		r := entitylock(t, env, "locks", "--all")
		if r.code != 0 || !strings.Contains(r.stdout, "1 reclaimable row(s): 1 expired, 0 released") {
			t.Errorf("exit %d: %q", r.code, r.stdout)
		}
	})
	t.Run("holder", func(t *testing.T) {
		if r := entitylock(t, env, "holder", "a"); r.code != 0 || !strings.Contains(r.stdout, "s1") {
			t.Errorf("holder a: exit %d, %q", r.code, r.stdout)
		}
		if r := entitylock(t, env, "holder", "old"); r.code != exitNo || !strings.Contains(r.stdout, "free") {
			t.Errorf("holder old (expired): exit %d, %q; want 3 and free", r.code, r.stdout)
		}
	})
	t.Run("release force", func(t *testing.T) {
		r := entitylock(t, env, "release", "--force", "c")
		if r.code != 0 || !strings.Contains(r.stdout, "released 1 lease") || !strings.Contains(r.stdout, "s2") {
			t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
		}
		if r := entitylock(t, env, "holder", "c"); r.code != exitNo {
			t.Errorf("holder c after release: exit %d, want 3", r.code)
		}
	})
	t.Run("purge", func(t *testing.T) {
		if r := entitylock(t, env, "purge"); r.code != 0 || !strings.Contains(r.stdout, "purged 2 ") {
			t.Errorf("purge: exit %d, %q", r.code, r.stdout)
		}
	})
	t.Run("release session", func(t *testing.T) {
		r := entitylock(t, env, "release", "--session", "s1", "--json")
		var got struct {
			Released int         `json:"released"`
			Leases   []leaseJSON `json:"leases"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.Released != 2 || len(got.Leases) != 2 {
			t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
		}
		if r := entitylock(t, env, "locks", "--all", "--json"); r.code != 0 || len(leaseEntities(t, r.stdout)) != 0 {
			t.Errorf("leases left: %s", r.stdout)
		}
	})
	t.Run("migrate", func(t *testing.T) {
		r := entitylock(t, env, "migrate", "version", "--json")
		var v map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["version"] != float64(schema.Latest()) {
			t.Fatalf("version: exit %d: %q", r.code, r.stdout)
		}
		if r := entitylock(t, env, "migrate", "down"); r.code != 2 {
			t.Errorf("down without --yes: exit %d, want 2", r.code)
		}
		if r := entitylock(t, env, "migrate", "down", "--yes"); r.code != 0 || !strings.Contains(r.stdout, "version 0") {
			t.Fatalf("down: exit %d: %q %q", r.code, r.stdout, r.stderr)
		}
		if r := entitylock(t, env, "locks"); r.code != 1 || !strings.Contains(r.stderr, "no entitylock schema") {
			t.Errorf("locks after down: exit %d, %q", r.code, r.stderr)
		}
		if r := entitylock(t, env, "migrate", "up"); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("version %d ", schema.Latest())) {
			t.Errorf("up: exit %d: %q %q", r.code, r.stdout, r.stderr)
		}
	})
}

func TestUsageAndDatabaseErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	text := []byte(strings.Repeat("this is not a database\n", 10))
	if err := os.WriteFile(notDB, text, 0o644); err != nil {
		t.Fatal(err)
	}
	newer := prepare(t, locktest.SQLite())
	if _, err := openSQL(t, newer).Exec(`UPDATE ` + schema.MigrationsTable + ` SET version = 99`); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.db")

	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"no command", nil, 2},
		{"unknown command", []string{"frobnicate"}, 2},
		{"bad flag", []string{"locks", "--db", missing, "--bogus"}, 2},
		{"bad demo value", []string{"demo", "--agents", "0"}, 2},
		{"bad crash rate", []string{"demo", "--crash-rate", "1.5"}, 2},
		{"holder without entity", []string{"holder", "--db", missing}, 2},
		{"release without target", []string{"release", "--db", missing}, 2},
		{"no database given", []string{"locks"}, 2},
		{"missing file", []string{"locks", "--db", missing}, 1},
		{"missing file holder", []string{"holder", "--db", missing, "x"}, 1},
		{"not a database", []string{"locks", "--db", notDB}, 1},
		{"not a database purge", []string{"purge", "--db", notDB}, 1},
		{"not a database migrate", []string{"migrate", "--db", notDB, "up"}, 1},
		{"newer schema", []string{"locks", "--db", newer}, 1},
		{"newer schema purge", []string{"purge", "--db", newer}, 1},
		{"help", []string{"--help"}, 0},
		{"command help", []string{"demo", "--help"}, 0},
		{"help after an argument", []string{"holder", "x", "--help"}, 0},
		{"flag after the entity", []string{"holder", "x", "--db", missing}, 1},
		{"flag after the action", []string{"migrate", "version", "--db", missing}, 1},
		{"down --yes after the action", []string{"migrate", "down", "--yes", "--db", missing}, 1},
		{"unknown migrate action", []string{"migrate", "sideways", "--db", missing}, 2},
		{"migrate alone", []string{"migrate", "--db", missing}, 2},
		{"force without version", []string{"migrate", "force", "--db", missing}, 2},
		{"force bad version", []string{"migrate", "force", "x", "--db", missing}, 2},
		{"force unknown version", []string{"migrate", "force", "99", "--db", missing}, 2},
		{"empty session", []string{"locks", "--session", "", "--db", missing}, 2},
		{"empty session watch", []string{"watch", "--session=", "--db", missing}, 2},
		{"empty force", []string{"release", "--force", "", "--db", missing}, 2},
		{"both release targets", []string{"release", "--force", "a", "--session", "s", "--db", missing}, 2},
		{"extra argument", []string{"locks", "extra", "--db", missing}, 2},
		{"memory with procs", []string{"demo", "--db", ":memory:", "--procs", "2"}, 2},
		{"version", []string{"--version"}, 0},
		{"completion", []string{"completion", "bash"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := entitylock(t, []string{"ENTITYLOCK_DB="}, tt.args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if tt.wantCode == 1 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("want one error line, got:\n%s", r.stderr)
			}
			if tt.wantCode == 2 && !strings.Contains(r.stderr, "Usage:") {
				t.Errorf("no usage on stderr:\n%s", r.stderr)
			}
			if tt.wantCode == 0 && r.stdout == "" {
				t.Errorf("nothing on stdout")
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only command created %s", missing)
	}
	if got, _ := os.ReadFile(notDB); !slices.Equal(got, text) {
		t.Errorf("the non-database file changed")
	}
	var v int
	if err := openSQL(t, newer).QueryRow(`SELECT version FROM ` + schema.MigrationsTable).Scan(&v); err != nil || v != 99 {
		t.Errorf("newer schema touched: version %d, %v", v, err)
	}
}

// On PostgreSQL, database errors are one line too, a password never shows,
// and a read-only command changes nothing: it leaves no schema behind.
func TestPostgresDatabaseErrors(t *testing.T) {
	b := locktest.Postgres(t)
	empty := b.NewDSN(t) // a schema without the lock tables
	u, err := url.Parse(empty)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("postgres", "hunter2")
	u.Host = "127.0.0.1:1" // nothing listens there
	unreachable := u.String()

	for _, tt := range []struct {
		name, want string
		args       []string
	}{
		{"no schema", "no entitylock schema", []string{"locks", "--db", empty}},
		{"no schema purge", "no entitylock schema", []string{"purge", "--db", empty}},
		{"no server", "connect", []string{"locks", "--db", unreachable}},
		{"no server migrate", "connect", []string{"migrate", "--db", unreachable, "up"}},
		{"bad URL", "cannot parse the database URL", []string{"locks", "--db", "postgres://%zz"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := entitylock(t, []string{"ENTITYLOCK_DB="}, tt.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || strings.Contains(r.stderr, "hunter2") {
				t.Errorf("want one error line without the password, got:\n%s", r.stderr)
			}
		})
	}
	var tables int
	if err := testkit.DB(t, empty).QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("read-only commands left %d tables (%v) in an empty schema", tables, err)
	}
}
