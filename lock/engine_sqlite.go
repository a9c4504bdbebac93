package lock

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/db/sqlitedb"
)

// sqliteEngine runs the statements of queries/sqlite, prepared once per
// Manager. Its statements read no clock: now is always a reading of the
// Manager's clock.
type sqliteEngine struct {
	db   *sql.DB
	q    *sqlitedb.Queries
	file dbFile
	// wake is the database's wake file (wakefile.go); nil when there is
	// none, for wakeErr.
	wake    *wakeFile
	wakeErr error
	// tokenGuess is the largest token an acquireAll of this engine gave
	// or was told of: AcquireAllFree's next token is one above it.
	tokenGuess atomic.Int64
}

var (
	_ engine     = (*sqliteEngine)(nil)
	_ changeFeed = (*sqliteEngine)(nil)
)

func newSQLiteEngine(ctx context.Context, db *sql.DB, log *slog.Logger) (*sqliteEngine, error) {
	file, err := openedFile(ctx, db)
	if err != nil {
		return nil, err
	}
	q, err := sqlitedb.Prepare(ctx, db)
	if err != nil {
		return nil, err
	}
	e := &sqliteEngine{db: db, q: q, file: file}
	switch ro, err := readOnly(ctx, db); {
	case err != nil:
		q.Close()
		return nil, err
	case file.path == "":
		e.wakeErr = errors.New("the database has no file")
	case ro:
		e.wakeErr = errors.New("the database is open read-only")
	default:
		e.wake, e.wakeErr = openWakeFile(file.path, file.info.Mode().Perm())
		if e.wakeErr != nil && !errors.Is(e.wakeErr, errNoWakeFiles) {
			log.Warn("entitylock: no wake file: this Manager's releases wake waiters of other processes only at their next poll",
				slog.Any("err", e.wakeErr))
		}
	}
	return e, nil
}

// readOnly reports whether db's main database is open read-only.
func readOnly(ctx context.Context, db *sql.DB) (ro bool, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		if c, ok := dc.(interface{ Raw() *sqlite3.Conn }); ok {
			ro, _ = c.Raw().ReadOnly("main")
		}
		return nil
	})
	return ro, err
}

func (e *sqliteEngine) explain(err error) error { return e.file.explain(err) }

func (e *sqliteEngine) close() error {
	err := e.q.Close()
	if e.wake != nil {
		err = errors.Join(err, e.wake.close())
	}
	return err
}

// followChanges makes the engine a changeFeed: it watches the wake file
// (watch_sqlite.go).
func (e *sqliteEngine) followChanges(m *Manager) { m.watcher(e.wake, e.wakeErr) }

// freed rings entity's bell in the wake file (wakefile.go), once a
// statement that freed it, or that granted it anew after its lease expired
// or purged its expired lease (for the Do calls of other processes that
// held it), committed.
func (e *sqliteEngine) freed(entity string) {
	if e.wake != nil {
		e.wake.ring(entity)
	}
}

func (e *sqliteEngine) acquire(ctx context.Context, entity, session string, now clockReading, ttlMs int64) (Lease, int64, error) {
	if err := e.file.check(); err != nil {
		return Lease{}, now.ms, err
	}
	rows, err := e.q.Acquire(ctx, sqlitedb.AcquireParams{
		Entity:    entity,
		SessionID: session,
		Now:       now.ms,
		ExpiresAt: now.ms + ttlMs,
	})
	if err == nil && len(rows) == 0 {
		return Lease{}, now.ms, errHeldByOther
	}
	row, err := first(rows, err)
	if err == nil && row.Reclaimed != 0 {
		e.freed(entity)
	}
	return sqliteLease(row), now.ms, err
}

// acquireAll tries AcquireAllFree first, with one token for every grant,
// one above the largest this engine has seen: when every entity is new or
// released, as when a session takes a set it took and released before, the
// grants need not come back from the database. Otherwise (one of them
// leased, live or expired, or with a token above the guess; or the fence
// at or above the token) that statement wrote nothing, and AcquireAll,
// which returns each grant, decides.
func (e *sqliteEngine) acquireAll(ctx context.Context, entities []string, session string, now clockReading, ttlMs int64) ([]Lease, int64, error) {
	if err := e.file.check(); err != nil {
		return nil, now.ms, err
	}
	list, err := json.Marshal(entities)
	if err != nil {
		return nil, now.ms, err
	}
	expires := now.ms + ttlMs
	token := e.tokenGuess.Load() + 1
	n, err := e.q.AcquireAllFree(ctx, sqlitedb.AcquireAllFreeParams{
		SessionID: session,
		Token:     token,
		Now:       now.ms,
		ExpiresAt: expires,
		Entities:  string(list),
	})
	switch {
	case err == nil && n == int64(len(entities)):
		e.saw(token)
		leases := make([]Lease, len(entities))
		for i, entity := range entities {
			leases[i] = sqliteLease(sqlitedb.EntitylockLease{
				Entity: entity, SessionID: session, Token: token, AcquiredAt: now.ms, ExpiresAt: expires,
			})
		}
		return leases, now.ms, nil
	case err != nil && !errors.Is(err, sqlite3.CONSTRAINT_NOTNULL):
		return nil, now.ms, err
	}
	rows, err := e.q.AcquireAll(ctx, sqlitedb.AcquireAllParams{
		SessionID: session,
		Now:       now.ms,
		ExpiresAt: expires,
		Entities:  string(list),
	})
	if err != nil {
		return nil, now.ms, err
	}
	if len(rows) == 0 {
		return nil, now.ms, errHeldByOther
	}
	leases := make([]Lease, len(rows))
	for i, r := range rows {
		e.saw(r.Token)
		if r.Reclaimed != 0 {
			e.freed(r.Entity)
		}
		leases[i] = sqliteLease(sqlitedb.EntitylockLease{
			Entity: r.Entity, SessionID: session, Token: r.Token, AcquiredAt: r.AcquiredAt,
			ExpiresAt: r.ExpiresAt, Reclaimed: r.Reclaimed,
		})
	}
	return leases, now.ms, nil
}

// saw raises tokenGuess to token, if it is below.
func (e *sqliteEngine) saw(token int64) {
	for {
		g := e.tokenGuess.Load()
		if token <= g || e.tokenGuess.CompareAndSwap(g, token) {
			return
		}
	}
}

func (e *sqliteEngine) holder(ctx context.Context, entity string, now clockReading) (Lease, int64, error) {
	row, err := first(e.q.Lease(ctx, sqlitedb.LeaseParams{Entity: entity, Now: now.ms}))
	return sqliteLease(row), now.ms, err
}

func (e *sqliteEngine) firstHeld(ctx context.Context, entities []string, session string, now clockReading) (Lease, int64, error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return Lease{}, now.ms, err
	}
	row, err := first(e.q.FirstHeld(ctx, sqlitedb.FirstHeldParams{Entities: string(list), Now: now.ms, SessionID: session}))
	return sqliteLease(row), now.ms, err
}

// liveOf returns the live grants among entities, as entity → the holder's
// session and token. It serves the change watcher, which runs it through
// q, prepared on its own connection.
func liveOf(ctx context.Context, q *sqlitedb.Queries, entities []string, now clockReading) (map[string]grant, error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return nil, err
	}
	rows, err := q.LiveOf(ctx, sqlitedb.LiveOfParams{Entities: string(list), Now: now.ms})
	if err != nil {
		return nil, err
	}
	live := make(map[string]grant, len(rows))
	for _, r := range rows {
		live[r.Entity] = grant{session: r.SessionID, token: r.Token}
	}
	return live, nil
}

// A grant names one lease by its holder and token.
type grant struct {
	session string
	token   int64
}

func (e *sqliteEngine) extend(ctx context.Context, entity, session string, now clockReading, byMs int64) (Lease, error) {
	if err := e.file.check(); err != nil {
		return Lease{}, err
	}
	row, err := first(e.q.Extend(ctx, sqlitedb.ExtendParams{ByMs: byMs, Entity: entity, SessionID: session, Now: now.ms}))
	return sqliteLease(row), err
}

func (e *sqliteEngine) renew(ctx context.Context, l Lease, now clockReading, ttlMs int64) (Lease, int64, error) {
	if err := e.file.check(); err != nil {
		return Lease{}, now.ms, err
	}
	row, err := first(e.q.Renew(ctx, sqlitedb.RenewParams{
		ExpiresAt: now.ms + ttlMs,
		Entity:    l.Entity,
		SessionID: l.SessionID,
		Token:     l.Token,
		Now:       now.ms,
	}))
	return sqliteLease(row), now.ms, err
}

// The releases ring the bells of what they freed (freed).

func (e *sqliteEngine) release(ctx context.Context, entity, session string) (bool, error) {
	n, err := e.q.Release(ctx, sqlitedb.ReleaseParams{Entity: entity, SessionID: session})
	return e.freedIf(entity, n, err)
}

func (e *sqliteEngine) releaseGrant(ctx context.Context, l Lease) (bool, error) {
	n, err := e.q.ReleaseGrant(ctx, sqlitedb.ReleaseGrantParams{Entity: l.Entity, SessionID: l.SessionID, Token: l.Token})
	return e.freedIf(l.Entity, n, err)
}

func (e *sqliteEngine) forceRelease(ctx context.Context, entity string) (bool, error) {
	n, err := e.q.ForceRelease(ctx, entity)
	return e.freedIf(entity, n, err)
}

func (e *sqliteEngine) releaseSession(ctx context.Context, session string) ([]string, error) {
	entities, err := e.q.ReleaseSession(ctx, session)
	if err == nil {
		for _, entity := range entities {
			e.freed(entity)
		}
	}
	return entities, err
}

// freedIf reports whether a release of entity changed a row, and rings
// its bell when it did.
func (e *sqliteEngine) freedIf(entity string, rows int64, err error) (bool, error) {
	if rows == 0 || err != nil {
		return false, err
	}
	e.freed(entity)
	return true, nil
}

func (e *sqliteEngine) purgeCandidates(ctx context.Context, after string, max int, now clockReading) ([]string, error) {
	return e.q.PurgeCandidates(ctx, sqlitedb.PurgeCandidatesParams{After: after, Now: now.ms, MaxRows: int64(max)})
}

func (e *sqliteEngine) purgeBatch(ctx context.Context, entities []string, now clockReading) (int64, error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return 0, err
	}
	n, err := e.q.PurgeBatch(ctx, sqlitedb.PurgeBatchParams{Entities: string(list), Now: now.ms})
	if err == nil && n > 0 {
		// A Do call of another process may still take a lease purged as
		// expired for its own; its entity's next grant makes a row anew,
		// which reclaims nothing.
		for _, entity := range entities {
			e.freed(entity)
		}
	}
	return n, err
}

// vacuumStep is how many free pages one incremental vacuum gives back, in
// one short write transaction; a purge vacuums while more than a quarter of
// the file's pages, and more than minFreePages, are free.
const (
	vacuumStep   = 256
	minFreePages = 256
)

// reclaimSpace runs PRAGMA incremental_vacuum step by step, pausing between
// steps as a purge does between batches. A file without
// auto_vacuum=INCREMENTAL (created before Open set it) keeps its free pages
// for new rows; VACUUM, run once while no process uses the file, after
// PRAGMA auto_vacuum=INCREMENTAL, converts it.
func (e *sqliteEngine) reclaimSpace(ctx context.Context) error {
	mode, err := e.pragma(ctx, "auto_vacuum")
	if err != nil || mode != 2 { // 2: INCREMENTAL
		return err
	}
	for {
		free, err := e.pragma(ctx, "freelist_count")
		if err != nil {
			return err
		}
		pages, err := e.pragma(ctx, "page_count")
		if err != nil {
			return err
		}
		if free <= minFreePages || 4*free <= pages {
			return nil
		}
		start := time.Now()
		if _, err := e.db.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", vacuumStep)); err != nil {
			return fmt.Errorf("incremental vacuum: %w", err)
		}
		if err := pause(ctx, time.Since(start)); err != nil {
			return err
		}
	}
}

// pragma reads an integer pragma, stepping its statement to the end.
func (e *sqliteEngine) pragma(ctx context.Context, name string) (int64, error) {
	rows, err := e.db.QueryContext(ctx, "PRAGMA "+name)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	defer rows.Close()
	var v int64
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	return v, nil
}

func (e *sqliteEngine) rowCounts(ctx context.Context, now clockReading) (RowCounts, error) {
	r, err := first(e.q.RowCounts(ctx, now.ms))
	return RowCounts{Live: r.Live, Expired: r.Expired, Released: r.Released}, err
}

func (e *sqliteEngine) liveLeases(ctx context.Context, now clockReading) ([]Lease, error) {
	rows, err := e.q.LiveLeases(ctx, now.ms)
	return sqliteLeases(rows), err
}

func (e *sqliteEngine) sessionLeases(ctx context.Context, session string, now clockReading) ([]Lease, error) {
	rows, err := e.q.SessionLeases(ctx, sqlitedb.SessionLeasesParams{SessionID: session, Now: now.ms})
	return sqliteLeases(rows), err
}

func (e *sqliteEngine) allLeases(ctx context.Context) ([]Lease, error) {
	rows, err := e.q.AllLeases(ctx)
	return sqliteLeases(rows), err
}

// guard reads the lease inside tx. On SQLite, tx holds the database's write
// lock (from BEGIN IMMEDIATE, or from its first write), and so does every
// grant: no takeover can commit before tx ends.
func (e *sqliteEngine) guard(ctx context.Context, tx *sql.Tx, l Lease, now clockReading) error {
	// Not the prepared statement: tx may come from another *sql.DB handle
	// on the same file.
	live, err := first(sqlitedb.New(tx).IsLive(ctx, sqlitedb.IsLiveParams{
		Entity:    l.Entity,
		SessionID: l.SessionID,
		Token:     l.Token,
		Now:       now.ms,
	}))
	if err == nil && !live {
		return errNoLease
	}
	return err
}

// first is the first of rows, or errNoLease: the statements of
// queries/sqlite return their row as a list, stepped to its end (see the
// file's header).
func first[R any](rows []R, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, err
	}
	if len(rows) == 0 {
		return zero, errNoLease
	}
	return rows[0], nil
}

func sqliteLease(r sqlitedb.EntitylockLease) Lease {
	return Lease{
		Entity:     r.Entity,
		SessionID:  r.SessionID,
		Token:      r.Token,
		AcquiredAt: time.UnixMilli(r.AcquiredAt).UTC(),
		ExpiresAt:  time.UnixMilli(r.ExpiresAt).UTC(),
		Reclaimed:  r.Reclaimed != 0,
	}
}

func sqliteLeases(rows []sqlitedb.EntitylockLease) []Lease {
	out := make([]Lease, len(rows))
	for i, r := range rows {
		out[i] = sqliteLease(r)
	}
	return out
}
