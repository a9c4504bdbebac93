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
// confirmed by PRAGMA data_version, read on a connection the watcher keeps
// idle, which changes when another connection has committed; the live
// leases of the entities waited for are then read, and the head of each
// line whose entity is free is woken. Do calls holding an entity that is
// free, or granted anew, renew at once.
//
// The watch is on only while the Manager has waiters: with none, no event
// reaches it and it does nothing. Where the file cannot be watched (no such
// file, a file system without notifications, no watches left), the watcher
// reads data_version every watchPollEvery instead, also only while there
// are waiters. BENCHMARKS.md has what either costs.
const (
	watchPollEvery = 5 * time.Millisecond
	// A write to the WAL is seen before the commit that makes it visible
	// (which updates the WAL index in shared memory, unseen by the watch),
	// so an unchanged data_version after a write is read again, at doubling
	// intervals, until it changes or settleTo has passed.
	settleFrom = 100 * time.Microsecond
	settleTo   = 6400 * time.Microsecond
	// A write seen within this time of the last change found is looked at
	// only when it is over, and the file's events are left unread until
	// then (the kernel folds them into one): on a busy database, the
	// watcher looks about once per quietAfterChange, not once per commit.
	quietAfterChange = 2 * time.Millisecond
)

// watcher runs from the Manager's first wait or Do until it closes,
// watching the database file while the Manager has waiters. When the watch
// fails (its connection broke, say) it starts again after a backoff;
// waiters poll on their own backoff meanwhile.
func (m *Manager) watcher() {
	ctx, cancel := m.lifeContext()
	defer cancel()
	w := &sqliteWatch{m: m}
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
	conn *connStmts        // idle between reads
	q    *sqlitedb.Queries // the engine's statements, run on conn
	last int64             // the data_version last read
	file string            // the file commits write; "" when there is none
	fsw  *fsnotify.Watcher

	// For tests: how many times data_version was read, whether a watch is
	// on, and whether the last one polled instead of watching the file.
	reads    atomic.Int64
	watching atomic.Bool
	polling  atomic.Bool
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
	file := w.m.eng.(*sqliteEngine).file.path
	if file != "" && mode == "wal" {
		file += "-wal"
	}
	w.conn = &connStmts{conn: conn, stmts: make(map[string]*sql.Stmt)}
	w.q, w.file = sqlitedb.New(w.conn), file
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
	if w.conn != nil {
		w.conn.close()
		w.conn, w.q = nil, nil
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
		timer      = time.NewTimer(time.Hour)
		pending    bool          // a write was seen; its commit not yet found
		settleIn   time.Duration // the wait before looking again for it
		lastChange time.Time     // when a change was last found
		quietTil   time.Time     // events are left unread until then
	)
	timer.Stop()
	defer timer.Stop()
	for {
		evc := events
		if time.Now().Before(quietTil) {
			evc = nil // the kernel folds the writes meanwhile into one event
		}
		force, look := false, false
		select {
		case <-ctx.Done():
			return nil
		case <-w.m.queues.linesChanged:
			if w.m.queues.empty() {
				return nil
			}
			force = true // a new line: its entity may have been released since its attempt
		case ev, ok := <-evc:
			if !ok {
				return errors.New("file watch closed")
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				return fmt.Errorf("%s was removed", w.file)
			}
			pending, settleIn, look = true, 0, true
			if quiet := time.Until(lastChange.Add(quietAfterChange)); quiet > 0 {
				// Writes in quick succession: look once the quiet time is over.
				quietTil, look = time.Now().Add(quiet), false
				timer.Reset(quiet)
			}
		case err := <-errs:
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return err
			}
			force = true // events were dropped
		case <-poll:
			look = true
		case <-timer.C:
			look = pending
		}
		if !force && !look {
			continue
		}
		changed, err := w.check(ctx, force)
		if err != nil {
			return err
		}
		timer.Stop()
		switch {
		case changed:
			pending = false
			if !force { // a forced look says nothing of how busy the file is
				lastChange = time.Now()
			}
		case !pending:
		case settleIn >= settleTo:
			pending = false // a write that committed nothing (yet)
		default:
			settleIn = max(2*settleIn, settleFrom)
			timer.Reset(settleIn)
		}
		if quiet := time.Until(quietTil); !pending && quiet > 0 {
			timer.Reset(quiet) // to read the events again
		}
	}
}

// check reads data_version and, when it changed or force is set, wakes the
// lines whose entity is free and the Do calls whose entity changed hands.
// It reports whether data_version changed.
func (w *sqliteWatch) check(ctx context.Context, force bool) (bool, error) {
	var v int64
	w.reads.Add(1)
	if err := w.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return false, fmt.Errorf("read data_version: %w", err)
	}
	changed := v != w.last
	w.last = v
	if !changed && !force {
		return false, nil
	}
	return changed, w.notify(ctx)
}

func (w *sqliteWatch) notify(ctx context.Context) error {
	m := w.m
	lines, kept := m.queues.entities(), m.keepers.entities()
	if len(lines)+len(kept) == 0 {
		return nil
	}
	live, err := liveOf(ctx, w.q, append(lines, kept...), m.stmtNow())
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
