package lock

import (
	"context"
	"time"
)

// A purge deletes rows in batches, each in its own transaction, sized so
// that one batch holds the SQLite write lock (or, on PostgreSQL, its rows)
// for about purgeBatchTime; after each batch it pauses as long as the batch
// took, so that grants and releases waiting for the lock get it in between.
// The candidates of a batch are read first, without the write lock.
const (
	purgeBatchTime = 5 * time.Millisecond
	minPurgeBatch  = 16
	maxPurgeBatch  = 4096
	firstPurgeSize = 256
)

// RowCounts counts the rows of the lease table by state. Expired and
// released rows are reclaimable: PurgeExpired and the sweeper delete them.
type RowCounts struct {
	Live     int64 // leases held now
	Expired  int64 // leases past their expiry, not yet reclaimed by a grant
	Released int64 // released leases, kept for their token until purged
}

// Reclaimable is the number of rows a purge would delete now.
func (c RowCounts) Reclaimable() int64 { return c.Expired + c.Released }

// RowCounts counts the rows of the lease table by state, every session's,
// by scanning it: it is meant for operators and monitoring.
func (m *Manager) RowCounts(ctx context.Context) (RowCounts, error) {
	if err := m.enter(); err != nil {
		return RowCounts{}, opError("row counts", "", err)
	}
	defer m.exit()
	c, err := m.eng.rowCounts(ctx, m.stmtNow())
	if err != nil {
		return RowCounts{}, m.fail(ctx, "row counts", "", err)
	}
	return c, nil
}

// PurgeExpired deletes the rows of expired and released leases and returns
// how many it deleted. A released lease's row is kept, with its token, so
// that the entity's next grant is a one-page write; expired leases are
// reclaimed by the next grant anyway. Purging only keeps the table small;
// fencing tokens stay monotonic across it.
//
// It deletes in batches, each a transaction of a few milliseconds, and
// pauses between them, so that grants and releases are never held up for
// long, however large the backlog; rows written meanwhile may be left for
// the next purge. On PostgreSQL a row that another transaction has locked
// at that moment is skipped, for a later purge, so purges never wait for
// each other or for other calls. On SQLite it then gives free pages back to
// the file system, a few hundred at a time, when more than a quarter of the
// file is free (in files with auto_vacuum=INCREMENTAL, which Open sets on
// the files it creates). The sweeper (WithSweepInterval) runs it in the
// background.
func (m *Manager) PurgeExpired(ctx context.Context) (int, error) {
	if err := m.enter(); err != nil {
		return 0, opError("purge expired", "", err)
	}
	defer m.exit()
	n, err := m.purge(ctx)
	m.count(nil, func(c *counters) { c.purged.Add(n) })
	if err == nil {
		err = m.eng.reclaimSpace(ctx)
	}
	if err != nil {
		return int(n), m.fail(ctx, "purge expired", "", err)
	}
	return int(n), nil
}

// purge deletes batch after batch of released and expired rows, in entity
// order, until a read finds fewer candidates than it asked for.
func (m *Manager) purge(ctx context.Context) (int64, error) {
	var total int64
	after, size := "", firstPurgeSize
	for {
		now := m.stmtNow()
		batch, err := m.eng.purgeCandidates(ctx, after, size, now)
		if err != nil || len(batch) == 0 {
			return total, err
		}
		start := time.Now()
		n, err := m.eng.purgeBatch(ctx, batch, now)
		took := time.Since(start)
		total += n
		if err != nil || len(batch) < size {
			return total, err
		}
		after = batch[len(batch)-1]
		switch {
		case took < purgeBatchTime/2:
			size = min(2*size, maxPurgeBatch)
		case took > purgeBatchTime:
			size = max(size/2, minPurgeBatch)
		}
		if err := pause(ctx, took); err != nil {
			return total, err
		}
	}
}

// pause waits for d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
