package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/entitylock/entitylock/db/sqlitedb"
)

// On SQLite, a Manager with waiters learns of releases by other processes
// (or by other *sql.DB on the same file) through the database's wake file
// (wakefile.go): it marks the slots of the entities its lines wait for and
// its Do calls hold, and watches the file (inotify on Linux, kqueue on BSD
// and macOS, through fsnotify). A release that frees a marked entity rings
// its bell and writes the file; the watcher then wakes the head of each
// line whose bell rang, and makes the Do calls holding such an entity
// renew at once. Commits that free nothing waited for write nothing there:
// a waiting Manager reads nothing for them. It reads the database only
// when it marks an entity anew (the leases of those entities, for a
// release committed before the mark) and when its own marks had lapsed
// before it marked again (the leases of all of them).
//
// The watch is on only while the Manager has waiters. Where the wake file
// cannot be watched (no watches left, a file system without
// notifications), the watcher reads the bells every watchPollEvery instead.
// Where there is no wake file (a database without a file, a read-only
// one, a system without mmap and flock or without 64-bit atomic operations
// between processes, a file that cannot be made or has the wrong size), it
// reads PRAGMA
// data_version every watchPollEvery, on a connection it keeps idle, and
// the live leases of the entities waited for when that changed.
// BENCHMARKS.md has what each costs.
const watchPollEvery = 5 * time.Millisecond

// watcher runs from the Manager's first wait or Do until it closes,
// watching for releases while the Manager has waiters. When the watch fails
// (its connection broke, say) it starts again after a backoff; waiters
// poll on their own backoff meanwhile. wake is the database's wake file,
// nil when there is none, for noWake.
func (m *Manager) watcher(wake *wakeFile, noWake error) {
	ctx, cancel := m.lifeContext()
	defer cancel()
	w := &sqliteWatch{m: m, wake: wake}
	m.fileWatch.Store(w)
	defer w.reset()
	if wake == nil {
		m.cfg.logger.Debug("entitylock: no wake file; waiters' Manager polls data_version",
			slog.Any("why", noWake), slog.Duration("every", watchPollEvery))
	}
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
	wake *wakeFile         // nil: poll data_version
	conn *connStmts        // idle between reads
	q    *sqlitedb.Queries // the engine's statements, run on conn
	last int64             // the data_version last read
	fsw  *fsnotify.Watcher
	// bells holds, for each entity marked, its bell as last read.
	bells map[string]int64
	// markedUntil is when this watcher's last round of marks lapses (Unix
	// ms; 0: none yet). An atomic for tests, which make it lapse.
	markedUntil atomic.Int64

	// For tests: how many times the watcher read the bells or data_version,
	// found a bell rung or data_version changed, and read the database;
	// whether a watch is on, and whether the last one polled instead of
	// watching the wake file.
	looks, changes, reads atomic.Int64
	watching              atomic.Bool
	polling               atomic.Bool
}

// open takes the watcher's connection and, with a wake file, its watch.
func (w *sqliteWatch) open(ctx context.Context) error {
	if w.conn != nil {
		return nil
	}
	conn, err := w.m.db.Conn(ctx)
	if err != nil {
		return err
	}
	w.conn = &connStmts{conn: conn, stmts: make(map[string]*sql.Stmt)}
	w.q = sqlitedb.New(w.conn)
	if w.wake == nil {
		if err := w.readVersion(ctx); err != nil { // the connection's first: what later reads compare with
			w.reset()
			return err
		}
	} else if w.fsw == nil {
		if w.fsw, err = fsnotify.NewWatcher(); err != nil {
			w.m.cfg.logger.Debug("entitylock: no file notifications; waiters' Manager polls the wake file",
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
	w.bells = nil
	w.markedUntil.Store(0)
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
	if w.fsw != nil {
		if err := w.fsw.Add(w.wake.path); err != nil {
			w.m.cfg.logger.Debug("entitylock: cannot watch the wake file; polling it",
				slog.String("file", w.wake.path), slog.Any("err", err), slog.Duration("every", watchPollEvery))
		} else {
			defer w.fsw.Remove(w.wake.path)
			events, errs = w.fsw.Events, w.fsw.Errors
		}
	}
	w.polling.Store(events == nil)
	if events == nil {
		t := time.NewTicker(watchPollEvery)
		defer t.Stop()
		poll = t.C
	}
	remark := time.NewTicker(wakeRemarkEvery)
	defer remark.Stop()
	w.watching.Store(true)
	defer w.watching.Store(false)
	// A release between a waiter's refused attempt and now went unseen:
	// mark, and check, every entity.
	if err := w.follow(ctx, true); err != nil {
		return err
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-w.m.queues.linesChanged:
			if w.m.queues.empty() {
				return nil
			}
			// A new line: its entity may have been released since its
			// attempt. Without a wake file no bell kept that release, and
			// the data_version it changed may have been read already: the
			// leases are read.
			err = w.follow(ctx, w.wake == nil)
		case <-remark.C:
			err = w.follow(ctx, false)
		case ev, ok := <-events:
			if err = w.written(ev, ok); err == nil {
				err = w.look(ctx)
			}
		case err = <-errs:
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				err = w.follow(ctx, true) // events were dropped
			}
		case <-poll:
			err = w.look(ctx)
		}
		if err != nil {
			return err
		}
	}
}

// written checks an event of the wake file (ok false: the channel closed)
// for the file's removal.
func (w *sqliteWatch) written(ev fsnotify.Event, ok bool) error {
	if !ok {
		return errors.New("file watch closed")
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		return fmt.Errorf("%s was removed", w.wake.path)
	}
	return nil
}

// follow marks, in the wake file, the entities the Manager's lines wait
// for and its Do calls hold, forgets those it no longer has, and reads the
// leases of those marked anew (all of them when all is set, or when its
// last marks lapsed before this round: releases meanwhile did not ring), waking the lines whose entity is free and the Do calls
// whose entity changed hands.
// Without a wake file it reads data_version, and with all set the leases.
func (w *sqliteWatch) follow(ctx context.Context, all bool) error {
	if w.wake == nil {
		_, err := w.check(ctx, all)
		return err
	}
	lines, kept := w.m.queues.entities(), w.m.keepers.entities()
	want := make(map[string]bool, len(lines)+len(kept))
	for _, e := range lines {
		want[e] = true
	}
	for _, e := range kept {
		want[e] = true
	}
	if w.bells == nil {
		w.bells = make(map[string]int64)
	}
	now := time.Now()
	if last := w.markedUntil.Load(); last != 0 && now.UnixMilli() >= last {
		all = true
	}
	until := now.Add(wakeMarkFor).UnixMilli()
	w.markedUntil.Store(until)
	var fresh []string
	for e := range want {
		w.wake.mark(e, until)
		if _, ok := w.bells[e]; !ok || all {
			w.bells[e] = w.wake.bell(e)
			fresh = append(fresh, e)
		}
	}
	maps.DeleteFunc(w.bells, func(e string, _ int64) bool { return !want[e] })
	if len(fresh) == 0 {
		return nil
	}
	return w.notify(ctx, fresh)
}

// look reads the bells of the entities marked and wakes the lines, and
// the Do calls, whose bell rang; without a wake file it reads
// data_version, and the leases when it changed.
func (w *sqliteWatch) look(ctx context.Context) error {
	if w.wake == nil {
		_, err := w.check(ctx, false)
		return err
	}
	w.looks.Add(1)
	for e, last := range w.bells {
		if b := w.wake.bell(e); b != last {
			w.bells[e] = b
			w.changes.Add(1)
			w.m.releasedElsewhere(e)
		}
	}
	return nil
}

// check learns from data_version whether another connection committed
// since the last check and, when one did or force is set, wakes the lines
// whose entity is free and the Do calls whose entity changed hands. It
// reports whether anything was committed.
func (w *sqliteWatch) check(ctx context.Context, force bool) (bool, error) {
	w.looks.Add(1)
	last := w.last
	if err := w.readVersion(ctx); err != nil {
		return false, err
	}
	changed := w.last != last
	if changed {
		w.changes.Add(1)
	} else if !force {
		return false, nil
	}
	lines, kept := w.m.queues.entities(), w.m.keepers.entities()
	return changed, w.notify(ctx, slices.Concat(lines, kept))
}

// readVersion reads data_version into w.last.
func (w *sqliteWatch) readVersion(ctx context.Context) error {
	if err := w.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&w.last); err != nil {
		return fmt.Errorf("read data_version: %w", err)
	}
	return nil
}

// notify reads the live leases of entities and wakes the lines among them
// whose entity is free, and the Do calls whose entity is free or held by
// another grant.
func (w *sqliteWatch) notify(ctx context.Context, entities []string) error {
	if len(entities) == 0 {
		return nil
	}
	m := w.m
	live, err := liveOf(ctx, w.q, entities, m.stmtNow())
	if err != nil {
		return fmt.Errorf("read live leases: %w", err)
	}
	w.reads.Add(1)
	for _, e := range entities {
		g, held := live[e]
		if !held || !m.keepers.allHold(e, g.session, g.token) {
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
