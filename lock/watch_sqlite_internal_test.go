package lock

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"runtime"
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
	waitGranted(t, done)
}

// watchOnFile is watchOn for a watch on the wake file, which Linux
// (inotify) always allows; elsewhere the test is skipped when the watcher
// polls instead, or has no wake file.
func watchOnFile(t *testing.T, m *Manager) *sqliteWatch {
	t.Helper()
	w := watchOn(t, m)
	if errors.Is(m.eng.(*sqliteEngine).wakeErr, errNoWakeFiles) {
		t.Skip("no wake files on this system: the watcher polls")
	}
	if w.polling.Load() {
		if runtime.GOOS == "linux" {
			t.Fatal("the watcher polls; want it watching the wake file")
		}
		t.Skip("no file notifications here: the watcher polls")
	}
	return w
}

var waitForever = WithRetry(RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour})

// The watch runs only while the Manager has waiters, and only a release of
// an entity waited for reaches it: another process's commits cost a
// Manager without waiters nothing, and a waiter nothing while its entity
// stays held, not even a read of the database.
func TestWatchOnlyWhileWaiting(t *testing.T) {
	if wakeSlot("busy") == wakeSlot("hot") {
		t.Fatal(`"busy" and "hot" share a slot of the wake file: pick other names`)
	}
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
	eventually(t, "the watcher to read the lease of the entity it marked", func() bool { return w.reads.Load() > 0 })
	reads := w.reads.Load()

	// Commits on other entities, even releases, reach nobody.
	for range 5 {
		if _, err := busy.TryAcquire(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		if _, err := busy.Release(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
	}
	// The release wakes the waiter, without a read of the database.
	releaseWakes(t, holder, done)
	if got := m.Stats().Contended; got != 1 {
		t.Errorf("after 5 commits on another entity and the release: %d refused attempts; want 1 (the waiter's first)", got)
	}
	if got := w.changes.Load(); got != 1 {
		t.Errorf("bells found rung: %d; want 1, the release of the entity waited for", got)
	}
	if got := w.reads.Load() - reads; got != 0 {
		t.Errorf("5 commits on another entity and the release made the watcher read the database %d times; want 0", got)
	}

	// No waiters: the watch is off, and releases are not even looked at.
	if _, err := waiter.Release(ctx, "hot"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch to stop", func() bool { return !w.watching.Load() })
	looks := w.looks.Load()
	for range 20 {
		if _, err := busy.TryAcquire(ctx, "hot"); err != nil {
			t.Fatal(err)
		}
		if _, err := busy.Release(ctx, "hot"); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.looks.Load(); got != looks {
		t.Errorf("without waiters, 20 releases by another Manager made %d looks at the bells; want 0", got-looks)
	}
}

// Every way of releasing a lease in another Manager wakes the waiter.
func TestWatchWakesOnEveryRelease(t *testing.T) {
	tests := []struct {
		name string
		hold func(t *testing.T, s *Session) (release func())
	}{
		{"Release", func(t *testing.T, s *Session) func() {
			mustAcquire(t, s, "hot")
			return func() { mustRelease(t)(s.Release(t.Context(), "hot")) }
		}},
		{"ReleaseAll", func(t *testing.T, s *Session) func() {
			mustAcquire(t, s, "hot")
			return func() {
				if n, err := s.ReleaseAll(t.Context()); err != nil || n != 1 {
					t.Fatalf("ReleaseAll = %d, %v", n, err)
				}
			}
		}},
		{"ForceRelease", func(t *testing.T, s *Session) func() {
			mustAcquire(t, s, "hot")
			return func() { mustRelease(t)(s.m.ForceRelease(t.Context(), "hot")) }
		}},
		{"the end of Do", func(t *testing.T, s *Session) func() {
			held, end, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				done <- s.Do(context.Background(), "hot", func(context.Context, Lease) error {
					close(held)
					<-end
					return nil
				})
			}()
			<-held
			return func() {
				close(end)
				if err := <-done; err != nil {
					t.Fatalf("Do = %v", err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "l.db")
			other := openInternal(t, path, WithTTL(time.Hour))
			m := openInternal(t, path, WithTTL(time.Hour), waitForever)
			release := tt.hold(t, sessionOf(t, other, "holder"))
			done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
			w := watchOnFile(t, m)
			eventually(t, `the watcher to mark "hot"`, func() bool { return w.wake.marked("hot") })
			bell := w.wake.bell("hot")
			release()
			if w.wake.bell("hot") == bell {
				t.Errorf("%s did not ring the bell", tt.name)
			}
			waitGranted(t, done)
		})
	}
}

// When the watcher's own marks lapsed before it marked again (its process
// was stopped for longer than a mark lasts, say), it reads every lease it
// waits for: a release meanwhile, which rang no bell, still wakes the
// waiter, within wakeRemarkEvery.
func TestWatchRereadsAfterItsMarksLapsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	other := openInternal(t, path, WithTTL(time.Hour))
	m := openInternal(t, path, WithTTL(time.Hour), waitForever)
	mustAcquire(t, sessionOf(t, other, "holder"), "hot")
	done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
	w := watchOnFile(t, m)
	eventually(t, `the watcher to mark "hot" and read its lease`, func() bool { return w.reads.Load() > 0 })
	// A release that rings no bell, as one by SQL written by hand, or made
	// while the marks had lapsed.
	res, err := other.DB().ExecContext(t.Context(), `UPDATE entitylock_leases SET expires_at = 0 WHERE entity = 'hot'`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("release by hand: %d rows, %v", n, err)
	}
	w.markedUntil.Store(1) // lapsed long ago
	waitGranted(t, done)
}

func mustAcquire(t *testing.T, s *Session, entity string) {
	t.Helper()
	if _, err := s.TryAcquire(t.Context(), entity); err != nil {
		t.Fatal(err)
	}
}

// mustRelease returns a function that fails t unless the release whose
// results it is given released a lease.
func mustRelease(t *testing.T) func(ok bool, err error) {
	return func(ok bool, err error) {
		t.Helper()
		if err != nil || !ok {
			t.Fatalf("release = %v, %v; want true, nil", ok, err)
		}
	}
}

// waitGranted fails unless the Acquire whose result done gives succeeds
// within 10 s.
func waitGranted(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by the other Manager's release")
	}
}

// Where the database has no file to watch (an in-memory database shared by
// two pools), the watcher polls data_version while there are waiters.
func TestWatchPollsWithoutAFile(t *testing.T) {
	open := memdbOpener(t)
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

// memdbOpener makes an in-memory database for t, which has no file to
// watch, and returns a function that opens a Manager on a pool of its own
// over it, closed when t ends.
func memdbOpener(t *testing.T) func(opts ...Option) *Manager {
	name := "/entitylock-test-" + rand.Text()
	memdb.Create(name, nil)
	t.Cleanup(func() { memdb.Delete(name) })
	return func(opts ...Option) *Manager {
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
}

// While the watch is on, a Do call whose lease another Manager takes is
// cancelled at once, not at its next renewal (20 s away): by a
// force-release, or by a grant after the lease expired (its process was
// paused, say) or after a purge removed it, which ring the entity's bell
// too. The Do call's entity,
// held after the watch began, is marked at once, not at the next round of
// marks.
func TestWatchTellsDoOfALostLease(t *testing.T) {
	tests := []struct {
		name string
		take func(t *testing.T, other *Manager)
		want []error
	}{
		{"force-release", func(t *testing.T, other *Manager) {
			if ok, err := other.ForceRelease(t.Context(), "job"); err != nil || !ok {
				t.Fatalf("ForceRelease = %v, %v", ok, err)
			}
		}, []error{ErrLeaseLost, ErrNotHeld}},
		{"reclaim", func(t *testing.T, other *Manager) {
			l, err := sessionOf(t, other, "taker").TryAcquire(t.Context(), "job")
			if err != nil || !l.Reclaimed {
				t.Fatalf("TryAcquire by the Manager ahead = %+v, %v; want a grant that reclaimed the lease", l, err)
			}
		}, []error{ErrLeaseLost}},
		{"reclaim by AcquireAll", func(t *testing.T, other *Manager) {
			ls, err := sessionOf(t, other, "taker").AcquireAll(t.Context(), "job", "more")
			if err != nil || !ls[0].Reclaimed {
				t.Fatalf("AcquireAll by the Manager ahead = %+v, %v; want a grant that reclaimed the lease", ls, err)
			}
		}, []error{ErrLeaseLost}},
		{"purge, then a grant", func(t *testing.T, other *Manager) {
			if n, err := other.PurgeExpired(t.Context()); err != nil || n != 1 {
				t.Fatalf("PurgeExpired by the Manager ahead = %d, %v; want 1", n, err)
			}
			l, err := sessionOf(t, other, "taker").TryAcquire(t.Context(), "job")
			if err != nil || l.Reclaimed {
				t.Fatalf("TryAcquire after the purge = %+v, %v; want a grant of a new row", l, err)
			}
		}, []error{ErrLeaseLost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "l.db")
			// The other Manager's clock is 2 minutes ahead: it finds the
			// Do call's lease, of 1 minute, expired.
			other := openInternal(t, path, WithTTL(time.Hour), WithClock(func() time.Time { return time.Now().Add(2 * time.Minute) }))
			m := openInternal(t, path, WithTTL(time.Minute), WithRenewInterval(20*time.Second), waitForever)
			if _, err := sessionOf(t, other, "holder").TryAcquire(t.Context(), "other"); err != nil {
				t.Fatal(err)
			}
			// A waiter keeps the watch on.
			waitCtx, stopWaiting := context.WithCancel(context.Background())
			defer stopWaiting()
			waiting := acquireInBackground(waitCtx, sessionOf(t, m, "waiter"), "other")
			w := watchOnFile(t, m)
			eventually(t, `the watcher to mark "other"`, func() bool { return w.wake.marked("other") })
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
			begun := time.Now()
			eventually(t, `the watcher to mark "job"`, func() bool { return w.wake.marked("job") })
			if took := time.Since(begun); took >= wakeRemarkEvery/2 {
				t.Errorf(`the watcher marked "job" %v after the Do call began; want it at once`, took)
			}
			tt.take(t, other)
			select {
			case err := <-done:
				for _, want := range tt.want {
					if !errors.Is(err, want) {
						t.Errorf("Do = %v; want it to satisfy errors.Is(err, %v)", err, want)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Do not cancelled within 10s of another Manager taking its lease")
			}
			stopWaiting()
			if err := <-waiting; !errors.Is(err, context.Canceled) {
				t.Errorf("waiter: %v; want context.Canceled", err)
			}
		})
	}
}

// Outside WAL mode too, the wake file carries releases to waiters.
func TestWatchRollbackJournal(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "l.db") + "?_pragma=journal_mode(delete)"
	other := openInternal(t, dsn, WithTTL(time.Hour))
	m := openInternal(t, dsn, WithTTL(time.Hour), waitForever)
	holder := sessionOf(t, other, "holder")
	if _, err := holder.TryAcquire(t.Context(), "hot"); err != nil {
		t.Fatal(err)
	}
	done := acquireInBackground(context.Background(), sessionOf(t, m, "waiter"), "hot")
	watchOnFile(t, m)
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
