package lock_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/lock"
)

// dumpLeases reads the lease and fence tables behind the library's back, so
// a test can check that a rejected call left them as they were.
func dumpLeases(t *testing.T, path string) []string {
	t.Helper()
	return queryStrings(t, rawDB(t, path), `SELECT entity || '|' || session_id || '|' || token || '|' ||
		acquired_at || '|' || expires_at FROM entitylock_leases
		UNION ALL SELECT 'fence|' || last_token FROM entitylock_fence ORDER BY 1`)
}

// SQLite's own failures, beside the engine-neutral bad input of the
// conformance suite: each is a clear error and leaves the file as it was.
func TestSQLiteFailuresChangeNothing(t *testing.T) {
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "locks.db")
	m := mustOpenPath(t, path, lock.WithClock(clk.Now))
	mustAcquire(t, mustSession(t, m, "session-a"), "entity::held")
	before := dumpLeases(t, path)

	// The same file opened read-only.
	ro := mustOpenPath(t, "file:"+path+"?mode=ro")
	roSession := mustSession(t, ro, "session-ro")

	// The same file with a short busy timeout, for when another process
	// holds the write lock.
	short := mustOpenPath(t, "file:"+path+"?_pragma=busy_timeout(300)")
	shortSession := mustSession(t, short, "session-short")
	locked := func(call func(ctx context.Context) error) func() error {
		return func() error {
			holder := startWorker(t, "holdlock", "ENTITYLOCK_DB="+path)
			stdin, err := holder.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			out, err := holder.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := holder.Start(); err != nil {
				t.Fatal(err)
			}
			defer holder.Wait()
			defer stdin.Close()
			if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
				t.Fatalf("lock holder: %q", line)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang fails here
			defer cancel()
			start := time.Now()
			err = call(ctx)
			if waited := time.Since(start); waited < 250*time.Millisecond || ctx.Err() != nil {
				t.Errorf("returned after %v (ctx %v); want about the 300ms busy timeout", waited, ctx.Err())
			}
			return err
		}
	}

	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	openErr := func(dsn string, opts ...lock.Option) func() error {
		return func() error {
			m, err := lock.Open(t.Context(), dsn, opts...)
			if err == nil {
				m.Close()
			}
			return err
		}
	}

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"path is a directory", openErr(dir), lock.ErrInvalidOption},
		{"file is not SQLite", openErr(notDB), sqlite3.NOTADB},
		{"read-only database", func() error { _, err := roSession.TryAcquire(t.Context(), "entity::new"); return err }, sqlite3.READONLY},
		{"read-only database release", func() error { _, err := roSession.ReleaseAll(t.Context()); return err }, sqlite3.READONLY},
		{"locked by another process", locked(func(ctx context.Context) error {
			_, err := shortSession.TryAcquire(ctx, "entity::new")
			return err
		}), sqlite3.BUSY},
		{"locked by another process, release", locked(func(ctx context.Context) error {
			_, err := shortSession.Release(ctx, "entity::held")
			return err
		}), sqlite3.BUSY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got err %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(before, dumpLeases(t, path)); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
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
