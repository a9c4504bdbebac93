package lock

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

func openInternal(t *testing.T, path string, opts ...Option) *Manager {
	t.Helper()
	m, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	return m
}

// closeAtEnd closes m when the test ends and fails it if Close fails.
func closeAtEnd(t *testing.T, m *Manager) {
	t.Helper()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func sessionOf(t *testing.T, m *Manager, id string) *Session {
	t.Helper()
	s, err := m.Session(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// acquireInBackground has s Acquire entity; the channel gives its error.
func acquireInBackground(ctx context.Context, s *Session, entity string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, entity)
		done <- err
	}()
	return done
}

// watchOn waits until m's change watcher watches, and returns it.
func watchOn(t *testing.T, m *Manager) *sqliteWatch {
	t.Helper()
	eventually(t, "the watch to start", func() bool {
		w := m.fileWatch.Load()
		return w != nil && w.watching.Load()
	})
	return m.fileWatch.Load()
}

// releaseWakes releases "hot" through holder and fails unless the waiter
// whose result done gives is granted within 10 s.
func releaseWakes(t *testing.T, holder *Session, done <-chan error) {
	t.Helper()
	if _, err := holder.Release(t.Context(), "hot"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by the other Manager's release")
	}
}

// watchOnFile is watchOn for a watch on the database file, which Linux
// (inotify) always allows; elsewhere the test is skipped when the watcher
// polls instead.
func watchOnFile(t *testing.T, m *Manager) *sqliteWatch {
	t.Helper()
	w := watchOn(t, m)
	if w.polling.Load() {
		if runtime.GOOS == "linux" {
			t.Fatalf("the watcher polls; want it watching %s", w.file)
		}
		t.Skip("no file notifications here: the watcher polls")
	}
	return w
}

var waitForever = WithRetry(RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour})

// The watch runs only while the Manager has waiters, and a commit wakes only
// the lines whose entity it freed: another process's writes cost a Manager
// without waiters nothing, and a waiter nothing while its entity stays held.
func TestWatchOnlyWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	other := openInternal(t, path, WithTTL(time.Hour))
	m := openInternal(t, path, WithTTL(time.Hour), waitForever)
	holder, busy := sessionOf(t, other, "holder"), sessionOf(t, other, "busy")
	waiter := sessionOf(t, m, "waiter")
	ctx := t.Context()
	if _, err := holder.TryAcquire(ctx, "hot"); err != nil {
		t.Fatal(err)
	}

	done := acquireInBackground(context.Background(), waiter, "hot")
	w := watchOnFile(t, m)

	// Commits on other entities are seen, and wake nobody.
	seen := w.changes.Load()
	for range 5 {
		if _, err := busy.TryAcquire(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		if _, err := busy.Release(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the watcher to see the commit", func() bool { return w.changes.Load() > seen })
		seen = w.changes.Load()
	}
	if got := m.Stats().Contended; got != 1 {
		t.Errorf("after 5 commits on another entity: %d refused attempts; want 1 (the waiter's first)", got)
	}

	// The release wakes the waiter.
	releaseWakes(t, holder, done)

	// No waiters: the watch is off, and commits are not even read.
	if _, err := waiter.Release(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch to stop", func() bool { return !w.watching.Load() })
	looks := w.looks.Load()
	for range 20 {
		if _, err := busy.TryAcquire(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		if _, err := busy.Release(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.looks.Load(); got != looks {
		t.Errorf("without waiters, 20 commits by another Manager made %d looks for a commit; want 0", got-looks)
	}
}

// Where the database has no file to watch (an in-memory database shared by
// two pools), the watcher polls data_version while there are waiters.
func TestWatchPollsWithoutAFile(t *testing.T) {
	name := "/entitylock-test-" + rand.Text()
	memdb.Create(name, nil)
	t.Cleanup(func() { memdb.Delete(name) })
	open := func(opts ...Option) *Manager {
		db, err := driver.Open("file:" + name + "?vfs=memdb&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		m, err := New(t.Context(), db, opts...)
		if err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, m)
		return m
	}
	other, m := open(WithTTL(time.Hour)), open(WithTTL(time.Hour), waitForever)
	holder, waiter := sessionOf(t, other, "holder"), sessionOf(t, m, "waiter")
	if _, err := holder.TryAcquire(t.Context(), "hot"); err != nil {
		t.Fatal(err)
	}
	done := acquireInBackground(context.Background(), waiter, "hot")
	if !watchOn(t, m).polling.Load() {
		t.Errorf("the watcher watches a file of an in-memory database; want it polling")
	}
	releaseWakes(t, holder, done)
}

// While the watch is on, a Do call whose lease another Manager force-releases
// is cancelled at once, not at its next renewal (20 s away).
func TestWatchTellsDoOfAForceRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	operator := openInternal(t, path, WithTTL(time.Hour))
	m := openInternal(t, path, WithTTL(time.Minute), WithRenewInterval(20*time.Second), waitForever)
	ctx := t.Context()
	if _, err := sessionOf(t, operator, "holder").TryAcquire(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	// A waiter keeps the watch on.
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	waiting := acquireInBackground(waitCtx, sessionOf(t, m, "waiter"), "other")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- sessionOf(t, m, "worker").Do(context.Background(), "job", func(ctx context.Context, l Lease) error {
			close(started)
			<-ctx.Done()
			return context.Cause(ctx)
		})
	}()
	<-started
	watchOn(t, m)
	if ok, err := operator.ForceRelease(ctx, "job"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Do = %v; want ErrLeaseLost (ErrNotHeld)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do not cancelled within 10s of another Manager's ForceRelease")
	}
	stopWaiting()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v; want context.Canceled", err)
	}
}

// Outside WAL mode a commit writes the database file itself, which the
// watcher then watches.
func TestWatchRollbackJournal(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "l.db") + "?_pragma=journal_mode(delete)"
	other := openInternal(t, dsn, WithTTL(time.Hour))
	m := openInternal(t, dsn, WithTTL(time.Hour), waitForever)
	holder := sessionOf(t, other, "holder")
	if _, err := holder.TryAcquire(t.Context(), "hot"); err != nil {
		t.Fatal(err)
	}
	done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
	w := watchOnFile(t, m)
	if strings.HasSuffix(w.file, "-wal") {
		t.Fatalf("watching %s in journal mode delete; want the database file", w.file)
	}
	releaseWakes(t, holder, done)
}

// Close, at any moment of the watcher's start, finalizes everything the
// watcher prepared: the database closes without error.
func TestCloseWhileTheWatchStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	other := openInternal(t, path, WithTTL(time.Hour))
	if _, err := sessionOf(t, other, "holder").TryAcquire(t.Context(), "hot"); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		m, err := Open(t.Context(), path, waitForever)
		if err != nil {
			t.Fatal(err)
		}
		done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
		eventually(t, "the waiter to be refused", func() bool { return m.Stats().Contended > 0 })
		time.Sleep(time.Duration(i%8) * 250 * time.Microsecond) // at different moments of the start
		if err := m.Close(); err != nil {
			t.Fatalf("Close, %d: %v", i, err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter: %v; want ErrClosed", err)
		}
	}
}

// In WAL mode, once a commit was seen both in data_version and in the
// WAL-index header of the -shm file, the watcher learns of commits from
// the header alone, with no SQL for commits that free nothing, and still
// wakes the waiter when its entity is released.
func TestWatchReadsTheWALIndexHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	other := openInternal(t, path, WithTTL(time.Hour))
	m := openInternal(t, path, WithTTL(time.Hour), waitForever)
	holder, busy := sessionOf(t, other, "holder"), sessionOf(t, other, "busy")
	ctx := t.Context()
	if _, err := holder.TryAcquire(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
	w := watchOnFile(t, m)
	// Each commit takes or releases "busy": a refresh in the same
	// millisecond as the last would write the same bytes, which SQLite
	// does not write at all, leaving nothing to see.
	held := false
	commit := func() {
		t.Helper()
		seen := w.changes.Load()
		var err error
		if held {
			_, err = busy.Release(ctx, "busy")
		} else {
			_, err = busy.TryAcquire(ctx, "busy")
		}
		if err != nil {
			t.Fatal(err)
		}
		held = !held
		eventually(t, "the watcher to see the commit", func() bool { return w.changes.Load() > seen })
	}
	// A commit seen by both trusts the header from then on. (One that lands
	// between the watcher's two reads is seen in data_version only.)
	for i := 0; !w.shmTrusted.Load(); i++ {
		if i == 10 {
			t.Fatal("10 commits seen, and the WAL-index header is still not trusted")
		}
		commit()
	}
	reads := w.versionReads.Load()
	for range 5 {
		commit()
	}
	// The one forced look for the new line may still be pending, and reads
	// data_version once; a look per commit would read it 5 times.
	if got := w.versionReads.Load() - reads; got > 1 {
		t.Errorf("5 commits seen through the WAL-index header made %d reads of data_version; want at most 1", got)
	}
	releaseWakes(t, holder, done)
}

// A -shm file whose header does not change (a VFS that keeps the WAL index
// in its own memory would leave it so) is never trusted: commits are then
// found through data_version.
func TestWatchDoesNotTrustAStillHeader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l.db")
	other := openInternal(t, path, WithTTL(time.Hour))
	m := openInternal(t, path, WithTTL(time.Hour))
	busy := sessionOf(t, other, "busy")
	ctx := t.Context()
	if _, err := busy.TryAcquire(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	// A copy of the -shm file, which no commit will change, stands for it.
	shm, err := os.ReadFile(path + "-shm")
	if err != nil {
		t.Fatal(err)
	}
	still := filepath.Join(dir, "still.db")
	if err := os.WriteFile(still+"-shm", shm, 0o600); err != nil {
		t.Fatal(err)
	}
	w := &sqliteWatch{m: m, path: path} // no waiters: m runs no watcher of its own
	if err := w.open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.reset)
	if w.shm == nil {
		t.Fatal("no WAL-index header read for a WAL database")
	}
	w.shm.close()
	if w.shm = openWALIndex(still); w.shm == nil {
		t.Fatal("cannot read the copy of the -shm file")
	}
	if _, err := w.check(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := busy.Release(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		if _, err := busy.TryAcquire(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		changed, err := w.check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if trusted := w.shmTrusted.Load(); !changed || trusted {
			t.Fatalf("commit %d: check found a commit: %v, trusts the header: %v; want true, false", i, changed, trusted)
		}
	}
}
