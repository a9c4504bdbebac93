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

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	clk := newTestClock()
	path := filepath.Join(t.TempDir(), "locks.db")
	m := mustOpenPath(t, path, lock.WithClock(clk.Now))
	s := mustSession(t, m, "session-a")
	mustAcquire(t, s, "entity::held")
	before := dumpLeases(t, path)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()

	// A second Manager on the same file, closed before use.
	closed := mustOpenPath(t, path)
	closedSession := mustSession(t, closed, "session-a")
	closed.Close()

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

	long := strings.Repeat("e", lock.MaxEntityLen+1)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"empty entity", func() error { _, err := s.TryAcquire(t.Context(), ""); return err }, lock.ErrInvalidEntity},
		{"oversized entity", func() error { _, err := s.Acquire(t.Context(), long); return err }, lock.ErrInvalidEntity},
		{"NUL in entity", func() error { _, err := s.TryAcquire(t.Context(), "a\x00b"); return err }, lock.ErrInvalidEntity},
		{"invalid UTF-8 entity", func() error { _, err := s.TryAcquire(t.Context(), "a\xffb"); return err }, lock.ErrInvalidEntity},
		{"extend empty entity", func() error { _, err := s.Extend(t.Context(), "", time.Second); return err }, lock.ErrInvalidEntity},
		{"release NUL entity", func() error { _, err := s.Release(t.Context(), "\x00"); return err }, lock.ErrInvalidEntity},
		{"holder empty entity", func() error { _, err := m.Holder(t.Context(), ""); return err }, lock.ErrInvalidEntity},
		{"force release oversized", func() error { _, err := m.ForceRelease(t.Context(), long); return err }, lock.ErrInvalidEntity},
		{"empty session", func() error { _, err := m.Session(""); return err }, lock.ErrInvalidSession},
		{"oversized session", func() error { _, err := m.Session(strings.Repeat("s", lock.MaxSessionLen+1)); return err }, lock.ErrInvalidSession},
		{"NUL in session", func() error { _, err := m.Session("s\x00"); return err }, lock.ErrInvalidSession},
		{"invalid UTF-8 session", func() error { _, err := m.Session("\xc3\x28"); return err }, lock.ErrInvalidSession},
		{"zero extension", func() error { _, err := s.Extend(t.Context(), "entity::held", 0); return err }, lock.ErrInvalidDuration},
		{"negative extension", func() error { _, err := s.Extend(t.Context(), "entity::held", -time.Second); return err }, lock.ErrInvalidDuration},
		{"sub-millisecond extension", func() error { _, err := s.Extend(t.Context(), "entity::held", time.Microsecond); return err }, lock.ErrInvalidDuration},
		{"cancelled ctx acquire", func() error { _, err := s.TryAcquire(cancelled, "entity::new"); return err }, context.Canceled},
		{"cancelled ctx release", func() error { _, err := s.Release(cancelled, "entity::held"); return err }, context.Canceled},
		{"cancelled ctx purge", func() error { _, err := m.PurgeExpired(cancelled); return err }, context.Canceled},
		{"expired ctx acquire", func() error { _, err := s.Acquire(expired, "entity::new"); return err }, context.DeadlineExceeded},
		{"expired ctx extend", func() error { _, err := s.Extend(expired, "entity::held", time.Hour); return err }, context.DeadlineExceeded},
		{"zero TTL", openErr(path, lock.WithTTL(0)), lock.ErrInvalidDuration},
		{"negative TTL", openErr(path, lock.WithTTL(-time.Minute)), lock.ErrInvalidDuration},
		{"acquire after Close", func() error { _, err := closedSession.TryAcquire(t.Context(), "entity::new"); return err }, lock.ErrClosed},
		{"release all after Close", func() error { _, err := closedSession.ReleaseAll(t.Context()); return err }, lock.ErrClosed},
		{"nil *sql.DB", func() error { _, err := lock.New(t.Context(), nil); return err }, lock.ErrInvalidOption},
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
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
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
