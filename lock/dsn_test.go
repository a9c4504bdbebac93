package lock_test

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// Strings that are not an SQLite path never create a file, and never put a
// password in an error.
func TestOpenDSNsThatAreNotFiles(t *testing.T) {
	const password = "S3cretPassw0rd"
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name, dsn string
		want      error // nil: any error, as long as no file appears
	}{
		{"empty", "", lock.ErrInvalidDSN},
		{"blank", "   ", lock.ErrInvalidDSN},
		{"other scheme", "mysql://root:" + password + "@127.0.0.1/x", lock.ErrInvalidDSN},
		{"http", "http://example.invalid/locks.db", lock.ErrInvalidDSN},
		{"keyword DSN, no server", "host=127.0.0.1 port=1 user=postgres password=" + password + " dbname=x sslmode=disable connect_timeout=2", nil},
		{"keyword DSN, bad keyword value", "host=127.0.0.1 port=notaport password=" + password, lock.ErrInvalidOption},
		{"upper-case URL, no server", "POSTGRES://postgres:" + password + "@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", nil},
		{"keyword DSN, password after spaced =, bad port", "host=127.0.0.1 port=notaport password = " + password, lock.ErrInvalidDSN},
		{"keyword DSN, quoted password with an escaped quote, bad port", `host=127.0.0.1 port=notaport password='x\' ` + password + `'`, lock.ErrInvalidDSN},
		{"URL, bad port", "postgres://postgres:" + password + "@127.0.0.1:notaport/x", lock.ErrInvalidDSN},
		{"keyword DSN, unquoted password with a space", "host=127.0.0.1 password=x " + password + " port=5432", lock.ErrInvalidDSN},
		{"URL, password with a slash, unescaped", "postgres://postgres:" + password + "/x@127.0.0.1/db", lock.ErrInvalidDSN},
		{"URL, password of digits, a slash, more", "postgres://postgres:0/" + password + "@127.0.0.1:1/db", lock.ErrInvalidDSN},
		{"URL, password with an '@', unescaped", "postgres://postgres:x@" + password + "@127.0.0.1:1/db", lock.ErrInvalidDSN},
		{"URL, password of digits, a '?', more; bad sslmode", "postgres://postgres:61234?" + password + "@127.0.0.1:1/db?sslmode=bogus", nil},
		{"URL, query password with a '#'; bad sslmode", "postgres://postgres@127.0.0.1:1/db?sslmode=bogus&password=x#" + password, nil},
		{"keyword DSN, vertical tab before =, bad port", "host=127.0.0.1 port=notaport password\v=" + password, lock.ErrInvalidDSN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := lock.Open(t.Context(), tt.dsn)
			if err == nil {
				m.Close()
				t.Fatalf("Open(%q) succeeded; want an error", tt.dsn)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open: %v; want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
			if strings.Contains(err.Error(), "sqlite") {
				t.Errorf("error is SQLite's: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				t.Errorf("Open(%q) created %q", tt.dsn, e.Name())
			}
		})
	}
}

// Every form of PostgreSQL DSN that pgx accepts opens PostgreSQL, and
// "FILE:" URIs open SQLite.
func TestOpenDSNForms(t *testing.T) {
	t.Run("sqlite FILE: URI", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "upper.db")
		m, err := lock.Open(t.Context(), "FILE:"+path)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("no database at %s: %v", path, err)
		}
	})
	b := locktest.Postgres(t)
	base := b.NewDSN(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	keyword := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable search_path=%s",
		u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), u.Query().Get("search_path"))
	rest := strings.TrimPrefix(base, "postgres")
	for _, dsn := range []string{base, "POSTGRES" + rest, "PostgreSQL" + rest, keyword} {
		t.Run(dsn[:min(len(dsn), 16)], func(t *testing.T) {
			t.Chdir(t.TempDir())
			m := mustOpenPath(t, dsn)
			l := mustAcquire(t, mustSession(t, m, "s"), "entity::dsn")
			if l.Token <= 0 {
				t.Errorf("token %d", l.Token)
			}
			if entries, _ := os.ReadDir("."); len(entries) > 0 {
				t.Errorf("Open(%q) created files: %v", dsn, entries)
			}
		})
	}
}

// SQLite's durability is NORMAL unless the DSN asks for FULL, on every
// pooled connection (the README states what each guarantees).
func TestOpenSynchronousSetting(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, dsn string
		want      int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{"default", filepath.Join(dir, "default.db"), 1},
		{"synchronous(full)", "file:" + filepath.Join(dir, "full.db") + "?_pragma=synchronous(full)", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mustOpenPath(t, tt.dsn)
			db := m.DB()
			db.SetMaxIdleConns(4)
			conns := make([]*sql.Conn, 4) // four distinct connections
			for i := range conns {
				c, err := db.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			for i, c := range conns {
				var got int
				if err := c.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got); err != nil || got != tt.want {
					t.Errorf("connection %d: synchronous = %d, %v; want %d", i, got, err, tt.want)
				}
			}
		})
	}
}
