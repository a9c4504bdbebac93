package lock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/lock"
)

// An SQLite DSN that names no usable database file stops Open with a clear
// error. (The failures of a database in use, a read-only one or one whose
// write lock another connection holds, are the conformance suite's
// EngineFailuresChangeNothing.)
func TestSQLiteOpenFailures(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dsn string
		want      error
	}{
		{"path is a directory", dir, lock.ErrInvalidOption},
		{"file is not SQLite", notDB, sqlite3.NOTADB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := lock.Open(t.Context(), tt.dsn)
			if err == nil {
				m.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		dsn  string
		opts []lock.Option
		want error
	}{
		{"zero TTL", "a.db", []lock.Option{lock.WithTTL(0)}, lock.ErrInvalidDuration},
		{"negative TTL", "a.db", []lock.Option{lock.WithTTL(-time.Second)}, lock.ErrInvalidDuration},
		{"negative base delay", "a.db", []lock.Option{lock.WithRetry(lock.RetryPolicy{BaseDelay: -1})}, lock.ErrInvalidDuration},
		{"jitter above 1", "a.db", []lock.Option{lock.WithRetry(lock.RetryPolicy{Jitter: 1.5})}, lock.ErrInvalidOption},
		{"nil clock", "a.db", []lock.Option{lock.WithClock(nil)}, lock.ErrInvalidOption},
		{"nil logger", "a.db", []lock.Option{lock.WithLogger(nil)}, lock.ErrInvalidOption},
		{"renew interval under MinInterval", "a.db", []lock.Option{lock.WithRenewInterval(time.Nanosecond)}, lock.ErrInvalidDuration},
		{"renew interval not under the TTL", "a.db", []lock.Option{lock.WithTTL(time.Second), lock.WithRenewInterval(time.Second)}, lock.ErrInvalidDuration},
		{"sweep interval under MinInterval", "a.db", []lock.Option{lock.WithSweepInterval(time.Nanosecond)}, lock.ErrInvalidDuration},
		{"negative sweep interval", "a.db", []lock.Option{lock.WithSweepInterval(-time.Second)}, lock.ErrInvalidDuration},
		{"empty DSN", "", nil, lock.ErrInvalidOption},
		{"directory", ".", nil, lock.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.dsn
			if dsn != "" {
				dsn = filepath.Join(dir, dsn)
			}
			m, err := lock.Open(t.Context(), dsn, tt.opts...)
			if err == nil {
				m.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: got err %v, want %v", err, tt.want)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				t.Errorf("refused Open left %s", e.Name())
			}
		})
	}
	if _, err := lock.New(t.Context(), nil); !errors.Is(err, lock.ErrInvalidOption) {
		t.Errorf("New(nil): got err %v, want ErrInvalidOption", err)
	}
}

// A TTL too short to renew (a few milliseconds) still serves TryAcquire,
// but Do refuses to start, and takes nothing.
func TestDoRefusesTTLTooShortToRenew(t *testing.T) {
	m := mustOpenPath(t, filepath.Join(t.TempDir(), "a.db"), lock.WithTTL(time.Millisecond))
	s := mustSession(t, m, "a")
	ran := false
	err := s.Do(t.Context(), "e", func(context.Context, lock.Lease) error { ran = true; return nil })
	if !errors.Is(err, lock.ErrInvalidDuration) || ran {
		t.Fatalf("Do = %v (fn ran: %v); want ErrInvalidDuration, fn not run", err, ran)
	}
	if all, err := m.AllLeases(t.Context()); err != nil || len(all) != 0 {
		t.Errorf("leases after the refusal: %v, %v; want none", all, err)
	}
}

// Open takes a read-only "file:" URI (mode=ro) of an existing database:
// reads work through it, and a write fails with SQLite's READONLY.
func TestSQLiteOpenReadOnlyURI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks.db")
	held := mustAcquire(t, mustSession(t, mustOpenPath(t, path), "a"), "entity::held")
	ro := mustOpenPath(t, "file:"+path+"?mode=ro")
	if _, err := mustSession(t, ro, "b").TryAcquire(t.Context(), "entity::new"); !errors.Is(err, sqlite3.READONLY) {
		t.Fatalf("TryAcquire through mode=ro: got err %v, want sqlite3.READONLY", err)
	}
	if got, err := ro.AllLeases(t.Context()); err != nil || len(got) != 1 || got[0] != held {
		t.Errorf("AllLeases through mode=ro = %+v, %v; want only %+v", got, err, held)
	}
}
