package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/entitylock/entitylock/db/sqlitedb"
)

// On SQLite, a Manager with waiters learns that another process (or another
// *sql.DB on the same file) committed by watching the file a commit writes:
// the -wal file in WAL mode, the database file otherwise (inotify on Linux,
// kqueue on BSD and macOS, through fsnotify). A write seen there is
// confirmed by a change of the WAL-index header in the -shm file (one
// pread, no SQL) or of PRAGMA data_version, read on a connection the
// watcher keeps idle; the live leases of the entities waited for are then
// read, and the head of each line whose entity is free is woken. Do calls
// holding an entity that is free, or granted anew, renew at once. The
// header is read alone only once a commit was seen in both; until then,
// outside WAL mode, and for the watch's forced looks, data_version is read.
//
// The watch is on only while the Manager has waiters: with none, no event
// reaches it and it does nothing. Where the file cannot be watched (no such
// file, a file system without notifications, no watches left), the watcher
// looks every watchPollEvery instead, also only while there are waiters.
// BENCHMARKS.md has what either costs.
const (
	watchPollEvery = 5 * time.Millisecond
	// A write to the WAL is seen before the commit that makes it visible
	// (which updates the WAL index in shared memory, unseen by the watch):
	// the watcher looks at once and, finding nothing committed, again
	// settleFrom later, then at doubling intervals up to settleTo, until
	// another write is seen or the commit is no longer under way. A wait
	// under a millisecond lasts one (Go's timers wait in whole milliseconds
	// while a process is idle). Once the WAL-index header is trusted, the
	// -wal file tells whether a commit is under way (walIndex.committing):
	// if not, the write was part of a commit seen before; if so, the
	// watcher looks for settleMax at most (a transaction that spilled pages
	// into the log and rolled back leaves frames that look the same).
	// Otherwise it stops after the look at settleTo.
	settleFrom = 250 * time.Microsecond
	settleTo   = 6400 * time.Microsecond
	settleMax  = 100 * time.Millisecond
	// Each write is looked at as it comes until busyStreak writes came in
	// a row, each within the quiet time of the last change found (commits
	// keep coming, not a pair or a handoff's few): then, after each change
	// found, the file's events are left unread for a quiet time, so that on
	// a busy database the watcher looks once per quiet time, not once per
	// commit. The quiet time is quietMin, doubles at each further change
	// found, up to quietMax, and falls back to quietMin after a quiet time
	// without a write. (Every look costs a wake-up of the process; looking
	// at both commits of an isolated pair costs fewer than a quiet time,
	// which wakes it once more to end: BENCHMARKS.md.)
	quietMin   = 2 * time.Millisecond
	quietMax   = 8 * time.Millisecond
	busyStreak = 3
	// writerPause is how long the watcher, having looked too early at a
	// commit being written, leaves the CPU to its writer before the next
	// look (Linux; elsewhere it waits for settleFrom).
	writerPause = 100 * time.Microsecond
)

// watcher runs from the Manager's first wait or Do until it closes,
// watching the database file while the Manager has waiters. When the watch
// fails (its connection broke, say) it starts again after a backoff;
// waiters poll on their own backoff meanwhile. path is the database file,
// "" when it has none.
func (m *Manager) watcher(path string) {
	ctx, cancel := m.lifeContext()
	defer cancel()
	w := &sqliteWatch{m: m, path: path}
	m.fileWatch.Store(w)
	defer w.reset()
	delay := 10 * time.Millisecond
	for {
		if m.queues.empty() {
			select {
			case <-ctx.Done():
				return
			case <-m.queues.linesChanged:
				continue
			}
		}
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			delay = 10 * time.Millisecond
			continue
		}
		m.cfg.logger.Warn("entitylock: change watch interrupted; waiters poll meanwhile",
			slog.Any("err", err), slog.Duration("retry_in", delay))
		w.reset()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// sqliteWatch is the watcher's state, kept from one period with waiters to
// the next.
type sqliteWatch struct {
	m    *Manager
	path string            // the database file; "" when there is none
	conn *connStmts        // idle between reads
	q    *sqlitedb.Queries // the engine's statements, run on conn
	one  *rawLiveOne       // LiveOne on conn's SQLite connection; nil: through q
	last int64             // the data_version last read
	// The -shm file's WAL-index header, read instead of data_version once
	// a change of data_version was seen in it too (shmTrusted): a VFS
	// that kept the WAL index in private memory would leave it unchanged.
	shm        *walIndex
	shmTrusted atomic.Bool // read by tests too
	file       string      // the file commits write; "" when there is none
	fsw        *fsnotify.Watcher

	// For tests: how many times the watcher looked for a commit, found
	// one, and read data_version; whether a watch is on, and whether the
	// last one polled instead of watching the file.
	looks, changes, versionReads atomic.Int64
	watching                     atomic.Bool
	polling                      atomic.Bool
}

// open takes the watcher's connection and finds the file to watch.
func (w *sqliteWatch) open(ctx context.Context) error {
	if w.conn != nil {
		return nil
	}
	conn, err := w.m.db.Conn(ctx)
	if err != nil {
		return err
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		conn.Close()
		return err
	}
	file := w.path
	if file != "" && mode == "wal" {
		file += "-wal"
	}
	w.conn = &connStmts{conn: conn, stmts: make(map[string]*sql.Stmt)}
	w.q, w.file = sqlitedb.New(w.conn), file
	if w.one, err = prepareLiveOne(conn); err != nil {
		if !errors.Is(err, errNoRawConn) {
			w.reset()
			return err
		}
		w.one = nil // another driver's connection: LiveOne through q
	}
	if err := w.readVersion(ctx); err != nil { // the connection's first: what later reads compare with
		w.reset()
		return err
	}
	if mode == "wal" && w.path != "" {
		w.shm = openWALIndex(w.path)
	}
	if w.fsw == nil {
		if w.fsw, err = fsnotify.NewWatcher(); err != nil {
			w.m.cfg.logger.Debug("entitylock: no file notifications; waiters' Manager polls data_version",
				slog.Any("err", err), slog.Duration("every", watchPollEvery))
		}
	}
	return nil
}

// reset drops the connection and the file watch.
func (w *sqliteWatch) reset() {
	if w.one != nil {
		w.one.close()
		w.one = nil
	}
	if w.conn != nil {
		w.conn.close()
		w.conn, w.q = nil, nil
	}
	if w.shm != nil {
		w.shm.close()
		w.shm = nil
		w.shmTrusted.Store(false)
	}
	if w.fsw != nil {
		w.fsw.Close()
		w.fsw = nil
	}
}

// watch wakes waiters for releases committed by other connections until
// the Manager has no waiters (nil) or ctx ends (nil), or fails.
func (w *sqliteWatch) watch(ctx context.Context) error {
	if err := w.open(ctx); err != nil {
		return err
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
		poll   <-chan time.Time
	)
	if w.fsw != nil && w.file != "" {
		if err := w.fsw.Add(w.file); err != nil {
			w.m.cfg.logger.Debug("entitylock: cannot watch the database file; polling data_version",
				slog.String("file", w.file), slog.Any("err", err), slog.Duration("every", watchPollEvery))
		} else {
			defer w.fsw.Remove(w.file)
			events, errs = w.fsw.Events, w.fsw.Errors
		}
	}
	w.polling.Store(events == nil)
	if events == nil {
		t := time.NewTicker(watchPollEvery)
		defer t.Stop()
		poll = t.C
	}
	w.watching.Store(true)
	defer w.watching.Store(false)
	// A release between a waiter's refused attempt and now went unseen:
	// check every line.
	if _, err := w.check(ctx, true); err != nil {
		return err
	}
	var (
		timer    = time.NewTimer(time.Hour)
		pending  bool          // a write was seen; its commit not yet found
		settleIn time.Duration // the wait before looking again for it
		settled  time.Duration // the waits so far for it
		quiet    = quietMin    // the current quiet time
		inQuiet  bool          // events are left unread until timer fires
		streak   int           // writes in a row, each within quiet of the last change found
		found    time.Time     // when a look after a write last found a change
	)
	timer.Stop()
	defer timer.Stop()
	for {
		evc := events
		if inQuiet {
			evc = nil // the kernel folds the writes meanwhile into one event
		}
		force := false
		select {
		case <-ctx.Done():
			return nil
		case <-w.m.queues.linesChanged:
			if w.m.queues.empty() {
				return nil
			}
			force = true // a new line: its entity may have been released since its attempt
		case ev, ok := <-evc:
			if err := w.written(ev, ok); err != nil {
				return err
			}
			pending, settleIn, settled = true, 0, 0
			if time.Since(found) < quiet {
				streak++
			} else {
				streak, quiet = 0, quietMin
			}
		case err := <-errs:
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return err
			}
			force = true // events were dropped
		case <-poll:
		case <-timer.C:
			if pending {
				break // look
			}
			// The quiet time is over: was the file written meanwhile?
			inQuiet = false
			select {
			case ev, ok := <-events:
				if err := w.written(ev, ok); err != nil {
					return err
				}
				streak, pending, settleIn, settled = streak+1, true, 0, 0
			default:
				streak, quiet = 0, quietMin
				continue
			}
		}
		changed, err := w.check(ctx, force)
		if err == nil && !changed && pending && !force && settleIn == 0 && w.committing() && pauseThread(writerPause) {
			// Woken by the write before its commit was visible (the kernel
			// often runs the watcher on the writer's CPU): let the writer
			// finish, and look again.
			changed, err = w.check(ctx, false)
		}
		if err != nil {
			return err
		}
		switch {
		case changed && !force && events != nil && streak < busyStreak:
			// Found after a write (a forced look says nothing of how busy
			// the file is), with no stream of them yet: watch on.
			pending, found = false, time.Now()
			timer.Stop() // a settle look, if one was due
		case changed && !force && events != nil:
			// Found in a stream of writes: keep quiet for a while.
			if streak > busyStreak {
				quiet = min(2*quiet, quietMax)
			}
			pending, inQuiet, found = false, true, time.Now()
			timer.Reset(quiet)
		case changed:
			if pending {
				pending = false
				timer.Stop()
			}
		case !pending || force:
			// A forced look that found nothing leaves a pending one as it was.
		case !w.committing():
			pending = false // the write was part of a commit seen before
		case settleIn >= settleTo && !w.shmTrusted.Load(), settled >= settleMax:
			pending = false // a write that committed nothing (yet)
		default:
			settleIn = max(min(2*settleIn, settleTo), settleFrom)
			settled += settleIn
			timer.Reset(settleIn)
		}
	}
}

// committing reports whether the -wal file holds a frame of a commit not
// yet visible, or whether that is unknown (walIndex.committing).
func (w *sqliteWatch) committing() bool {
	return !w.shmTrusted.Load() || w.shm.committing()
}

// written checks an event of the watched file (ok false: the channel
// closed) for the file's removal.
func (w *sqliteWatch) written(ev fsnotify.Event, ok bool) error {
	if !ok {
		return errors.New("file watch closed")
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		return fmt.Errorf("%s was removed", w.file)
	}
	return nil
}

// check learns whether another connection committed since the last check
// and, when one did or force is set, wakes the lines whose entity is free
// and the Do calls whose entity changed hands. It reports whether anything
// was committed. It reads the WAL-index header, and data_version too until
// the header is trusted or when forced.
func (w *sqliteWatch) check(ctx context.Context, force bool) (bool, error) {
	w.looks.Add(1)
	hdr := w.shm != nil && w.shm.changed()
	changed := hdr
	if trusted := w.shmTrusted.Load(); !trusted || force {
		last := w.last
		if err := w.readVersion(ctx); err != nil {
			return false, err
		}
		changed = w.last != last
		if changed && hdr && !trusted {
			w.shmTrusted.Store(true)
		}
	}
	if changed {
		w.changes.Add(1)
	} else if !force {
		return false, nil
	}
	return changed, w.notify(ctx)
}

// readVersion reads data_version into w.last.
func (w *sqliteWatch) readVersion(ctx context.Context) error {
	w.versionReads.Add(1)
	if err := w.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&w.last); err != nil {
		return fmt.Errorf("read data_version: %w", err)
	}
	return nil
}

func (w *sqliteWatch) notify(ctx context.Context) error {
	m := w.m
	lines, kept := m.queues.entities(), m.keepers.entities()
	if len(lines)+len(kept) == 0 {
		return nil
	}
	live, err := w.live(ctx, append(lines, kept...), m.stmtNow())
	if err != nil {
		return fmt.Errorf("read live leases: %w", err)
	}
	for _, e := range lines {
		if _, held := live[e]; !held {
			m.releasedElsewhere(e)
		}
	}
	for _, e := range kept {
		if g, held := live[e]; !held || !m.keepers.allHold(e, g.session, g.token) {
			m.releasedElsewhere(e)
		}
	}
	return nil
}

// live returns the live grants among entities, as liveOf does.
func (w *sqliteWatch) live(ctx context.Context, entities []string, now clockReading) (map[string]grant, error) {
	if len(entities) != 1 {
		return liveOf(ctx, w.q, entities, now)
	}
	if w.one != nil {
		g, held, err := w.one.read(ctx, entities[0], now)
		if err != nil || !held {
			return nil, err
		}
		return map[string]grant{entities[0]: g}, nil
	}
	rows, err := w.q.LiveOne(ctx, sqlitedb.LiveOneParams{Entity: entities[0], Now: now.ms})
	if err != nil {
		return nil, err
	}
	live := make(map[string]grant, len(rows))
	for _, r := range rows {
		live[entities[0]] = grant{session: r.SessionID, token: r.Token}
	}
	return live, nil
}

// connStmts runs statements on one connection, each prepared at its first
// use and kept until close. It serves the watcher's goroutine only.
type connStmts struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
}

func (c *connStmts) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *connStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *connStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *connStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return c.conn.QueryRowContext(ctx, query, args...) // carries the error
	}
	return st.QueryRowContext(ctx, args...)
}

// close finalizes the statements and gives the connection back to the pool.
func (c *connStmts) close() {
	for _, st := range c.stmts {
		st.Close()
	}
	c.conn.Close()
}
