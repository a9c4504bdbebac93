package lock

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
)

// SQLite's automatic checkpoint (after a commit leaves 1000 pages in the
// -wal file) is PASSIVE: it copies back only the frames no reader still
// needs, and the file starts over only when a checkpoint completed while no
// reader used it. With several busy processes that moment may never come:
// the soak test saw a -wal of 390 MiB. So on the connections Open makes, a
// hook after each commit keeps the automatic checkpoint and, once the log
// holds restartPages, asks the Manager's background goroutine for a RESTART
// checkpoint: it waits for the readers to move past the log, copies all of
// it back, and makes the next writer start the file over (trimmed to
// walSizeLimit). While it waits, writers wait too, so it gives up after
// restartWait and is asked for again by a later commit. Busy processes can
// write the log faster than that catches up (the soak saw 65 MiB): past
// inlineRestartPages each commit runs the RESTART checkpoint itself before
// its statement returns, which slows the writers down until the log starts
// over.
const (
	autoCheckpointPages = 1000 // SQLite's default
	restartPages        = 4096 // 16 MiB of 4 KiB pages
	inlineRestartPages  = 8192 // 32 MiB
	restartWait         = 50 * time.Millisecond
)

// walKeeper keeps one Manager's -wal file bounded.
type walKeeper struct {
	due chan struct{} // buffered 1: a RESTART checkpoint is due
}

func newWALKeeper() *walKeeper { return &walKeeper{due: make(chan struct{}, 1)} }

// install is the driver's hook for each new connection, run after the
// DSN's pragmas.
func (w *walKeeper) install(c *sqlite3.Conn) error {
	busy, err := busyTimeout(c)
	if err != nil {
		return err
	}
	c.WALHook(func(c *sqlite3.Conn, schema string, pages int) error {
		return w.committed(c, schema, pages, busy)
	})
	return nil
}

// committed runs after each commit with the pages now in the log; busy is
// the connection's busy timeout. It never returns an error: the commit is
// done, and an error would fail the statement that made it.
func (w *walKeeper) committed(c *sqlite3.Conn, schema string, pages int, busy time.Duration) error {
	if pages >= inlineRestartPages {
		if c.BusyTimeout(restartWait) == nil {
			c.WALCheckpoint(schema, sqlite3.CHECKPOINT_RESTART) // BUSY: readers stayed, or another checkpoint runs
			c.BusyTimeout(busy)
		}
		return nil
	}
	if pages >= autoCheckpointPages {
		c.WALCheckpoint(schema, sqlite3.CHECKPOINT_PASSIVE) // BUSY: another checkpoint runs
	}
	if pages >= restartPages {
		select {
		case w.due <- struct{}{}:
		default: // already due
		}
	}
	return nil
}

// run makes the RESTART checkpoints asked for, until m closes.
func (w *walKeeper) run(m *Manager) {
	ctx, cancel := m.lifeContext()
	defer cancel()
	for {
		select {
		case <-m.done:
			return
		case <-w.due:
		}
		start := time.Now()
		err := restartWAL(ctx, m.db)
		switch {
		case err != nil && ctx.Err() == nil:
			m.cfg.logger.Debug("entitylock: WAL restart checkpoint put off", slog.Any("err", err), slog.Duration("took", time.Since(start)))
		case err == nil:
			m.cfg.logger.Debug("entitylock: WAL restart checkpoint", slog.Duration("took", time.Since(start)))
		}
	}
}

// restartWAL runs a RESTART checkpoint on one of db's connections, waiting
// at most restartWait for readers, then restores the connection's busy
// timeout.
func restartWAL(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(driver.Conn).Raw()
		before, err := busyTimeout(c)
		if err != nil {
			return err
		}
		if err := c.BusyTimeout(restartWait); err != nil {
			return err
		}
		_, _, err = c.WALCheckpoint("main", sqlite3.CHECKPOINT_RESTART)
		return errors.Join(err, c.BusyTimeout(before))
	})
}

// busyTimeout reads the connection's busy timeout.
func busyTimeout(c *sqlite3.Conn) (time.Duration, error) {
	stmt, _, err := c.Prepare("PRAGMA busy_timeout")
	if err != nil {
		return 0, err
	}
	stmt.Step()
	ms := stmt.ColumnInt64(0)
	if err := errors.Join(stmt.Err(), stmt.Close()); err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}
