package lock_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// Every DSN is taken by exactly one engine or refused: nothing falls back
// to an engine for a DSN it does not recognise.
func TestEngineOfDSN(t *testing.T) {
	tests := []struct {
		dsn  string
		want string // "" with ErrInvalidDSN
	}{
		{"", ""},
		{"   ", ""},
		{"mysql://root@127.0.0.1/x", ""},
		{"http://example.invalid/locks.db", ""},
		{"redis://127.0.0.1:6379", ""},
		{"sqlite://locks.db", ""},
		{"locks.db", "sqlite"},
		{"/var/lib/app/locks.db", "sqlite"},
		{"./a=b.db", "sqlite"},
		{"file:locks.db?_pragma=synchronous(full)", "sqlite"},
		{"FILE:locks.db", "sqlite"},
		{"file:///tmp/locks.db", "sqlite"},
		{":memory:", "sqlite"},
		{"postgres://u@h/db", "postgres"},
		{"POSTGRESQL://u@h/db", "postgres"},
		{"host=127.0.0.1 dbname=test", "postgres"},
		{"a=b.db", "postgres"}, // reads as keyword/value settings, as documented
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			got, err := lock.EngineOfDSN(tt.dsn)
			if tt.want == "" {
				if !errors.Is(err, lock.ErrInvalidDSN) {
					t.Errorf("EngineOfDSN(%q) = %q, %v; want ErrInvalidDSN", tt.dsn, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("EngineOfDSN(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	const password = "S3cretPassw0rd"
	for _, dsn := range []string{
		"postgres://u:" + password + "@127.0.0.1/x",
		"postgres://u@127.0.0.1/x?password=" + password + "&sslmode=disable",
		"postgres://u@127.0.0.1/x?sslmode=verify-full&sslpassword=" + password,
		"host=127.0.0.1 sslpassword=" + password + " dbname=x",
		"host=127.0.0.1 password=" + password + " dbname=x",
		"host=127.0.0.1 password='" + password + " x' dbname=x",
		"mysql://u:" + password + "@h/x",
		"postgres://u:61234?" + password + "@127.0.0.1/x",
		"postgres://u:0/" + password + "@127.0.0.1/x",
		"postgres://u:x@" + password + "@127.0.0.1/x",
		"postgres://u:x#" + password + "@127.0.0.1/x",
		"postgres://u@127.0.0.1/x?password=x#" + password,
		"host=127.0.0.1 password\v=" + password + " dbname=x",
	} {
		if got := lock.RedactDSN(dsn); strings.Contains(got, password) {
			t.Errorf("RedactDSN(%q) = %q, shows the password", dsn, got)
		}
	}
	if got := lock.RedactDSN("/tmp/locks.db"); got != "/tmp/locks.db" {
		t.Errorf("RedactDSN of a path = %q; want it unchanged", got)
	}
}

// OpenDB opens with the access asked for, creates only with Create, and
// refuses what Open refuses plus ":memory:".
func TestOpenDB(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database ", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	refusals := []struct {
		name   string
		dsn    string
		access lock.Access
		want   error
	}{
		{"missing, read-only", missing, lock.ReadOnly, fs.ErrNotExist},
		{"missing, read-write", missing, lock.ReadWrite, fs.ErrNotExist},
		{"missing directory, create", filepath.Join(dir, "no", "such.db"), lock.Create, fs.ErrNotExist},
		{"directory", dir, lock.Create, lock.ErrInvalidDSN},
		{"text file", text, lock.ReadWrite, sqlite3.NOTADB},
		{"memory", ":memory:", lock.Create, lock.ErrInvalidDSN},
		{"other scheme", "mysql://h/x", lock.Create, lock.ErrInvalidDSN},
		{"no access", filepath.Join(dir, "x.db"), 0, lock.ErrInvalidOption},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := testkit.DirNames(t, dir)
			db, err := lock.OpenDB(t.Context(), tt.dsn, tt.access)
			if err == nil {
				db.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("OpenDB(%q, %d) = %v; want %v", tt.dsn, tt.access, err, tt.want)
			}
			if diff := cmp.Diff(before, testkit.DirNames(t, dir)); diff != "" {
				t.Errorf("OpenDB changed the directory (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("create, then read-only and read-write", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		db, err := lock.OpenDB(t.Context(), path, lock.Create)
		if err != nil {
			t.Fatal(err)
		}
		m, err := lock.New(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, mustSession(t, m, "s"), "e")
		m.Close()
		db.Close()

		ro, err := lock.OpenDB(t.Context(), path, lock.ReadOnly)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		var n int
		if err := ro.QueryRow(`SELECT count(*) FROM entitylock_leases`).Scan(&n); err != nil || n != 1 {
			t.Errorf("read-only: %d rows, %v; want 1", n, err)
		}
		if _, err := ro.Exec(`DELETE FROM entitylock_leases`); err == nil {
			t.Error("read-only: a DELETE succeeded")
		}

		rw, err := lock.OpenDB(t.Context(), path, lock.ReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		defer rw.Close()
		if _, err := rw.Exec(`DELETE FROM entitylock_leases`); err != nil {
			t.Errorf("read-write: %v", err)
		}
	})
}

// DSNs that SQLite would open as a separate database per pooled connection,
// or that no engine can open, are refused by Open and create nothing.
func TestOpenRefusesDSNsThatSplitOrCannotOpen(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, dsn := range []string{
		"file:", "FILE:", "file:?", "file::memory:", "file:?mode=memory", "file:x.db?mode=memory",
		"a\x00b.db", "postgres://u@h:notaport/x",
	} {
		t.Run(dsn, func(t *testing.T) {
			m, err := lock.Open(t.Context(), dsn)
			if err == nil {
				m.Close()
			}
			if !errors.Is(err, lock.ErrInvalidDSN) {
				t.Errorf("Open(%q) = %v; want ErrInvalidDSN", dsn, err)
			}
			if names := testkit.DirNames(t, dir); len(names) > 0 {
				t.Errorf("Open(%q) created %v", dsn, names)
			}
		})
	}
}

// A "file:" URI's path is %-decoded as SQLite decodes it, and a vfs
// parameter does not lift ReadOnly's and ReadWrite's refusal to create.
func TestOpenDBFileURIs(t *testing.T) {
	dir := t.TempDir()
	spaced := filepath.Join(dir, "my locks.db")
	m, err := lock.Open(t.Context(), spaced)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	db, err := lock.OpenDB(t.Context(), "file:"+strings.ReplaceAll(spaced, " ", "%20"), lock.ReadOnly)
	if err != nil {
		t.Fatalf("OpenDB of a %%-escaped path: %v", err)
	}
	db.Close()

	missing := filepath.Join(dir, "missing.db")
	for _, access := range []lock.Access{lock.ReadOnly, lock.ReadWrite} {
		db, err := lock.OpenDB(t.Context(), "file:"+missing+"?vfs=os", access)
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenDB(vfs=os, missing, %d) = %v; want fs.ErrNotExist", access, err)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("OpenDB(vfs=os, %d) created %s", access, missing)
		}
	}
}
