package lock

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/entitylock/entitylock/db/pgdb"
)

// postgresEngine runs the statements of queries/postgres through pgx's own
// API on the connections of a *sql.DB of pgx's database/sql driver
// (sql.Conn.Raw): pgx prepares and caches each statement on each
// connection, and the rows are read without database/sql's conversions.
// Leases are timed by the server's clock unless the Manager has an
// injected clock.
type postgresEngine struct {
	db *sql.DB
	// onConn runs a statement on a connection: withConn, or a fake in
	// tests.
	onConn func(ctx context.Context, stmt func(q *pgdb.Queries) error) error
	// health, when not nil, is the connHealth whose shouldPing the pool
	// was opened with (Open's pool): the engine tells it when a connection
	// died. It is nil when the pool is the caller's (New).
	health *connHealth
}

var (
	_ engine     = (*postgresEngine)(nil)
	_ changeFeed = (*postgresEngine)(nil)
)

func newPostgresEngine(db *sql.DB) *postgresEngine {
	e := &postgresEngine{db: db}
	e.onConn = e.withConn
	return e
}

func (e *postgresEngine) close() error { return nil }

// followChanges makes the engine a changeFeed: it listens for the
// notifications of releases (listen_postgres.go).
func (e *postgresEngine) followChanges(m *Manager) { m.listener() }

// acquire retries the statement when it fails with a serialization failure:
// the fence trigger refusing a new row whose token a concurrent purge
// overtook (schema/postgres), or SERIALIZABLE isolation set by the caller.
// Either way nothing was written, and the next attempt draws a new token.
// It is retried too when its connection died (see retry).
func (e *postgresEngine) acquire(ctx context.Context, entity, session string, now clockReading, ttlMs int64) (Lease, int64, error) {
	var row pgdb.AcquireRow
	err := e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		row, err = q.Acquire(ctx, pgdb.AcquireParams{Entity: entity, SessionID: session, TtlMs: ttlMs, Now: pgNow(now)})
		return err
	})
	if err != nil {
		return Lease{}, 0, noRow(err, errHeldByOther)
	}
	// The statement returns only what the caller does not know. With the
	// Manager's clock, "now" is its reading. With the server's, it is a
	// grant's AcquiredAt, which is then the expiry less the TTL; a
	// refresh's expiry may be one it kept, later than now + TTL, so what
	// it read is not known (unknownNow). Should the server's clock have
	// stepped back to before a lease's AcquiredAt, a refresh that kept its
	// expiry looks like a grant: counted as one, and its reading taken.
	l := pgLease(pgdb.EntitylockLease{
		Entity: entity, SessionID: session, Token: row.Token,
		AcquiredAt: row.AcquiredAt, ExpiresAt: row.ExpiresAt, Reclaimed: row.Reclaimed,
	})
	switch {
	case now.set:
		return l, now.ms, nil
	case row.AcquiredAt == row.ExpiresAt-ttlMs:
		return l, row.AcquiredAt, nil
	}
	return l, unknownNow, nil
}

// acquireAll runs the all-or-nothing statement alone, in one round trip,
// without a transaction of its own. It fails with errConflict, not retried
// here, when the server rolled it back: a deadlock with another
// acquireAll, a grant committed by another transaction while it ran that
// made it skip a row (entitylock_all_or_none then fails it with a
// serialization failure), or the fence refusing a new row (see acquire).
func (e *postgresEngine) acquireAll(ctx context.Context, entities []string, session string, now clockReading, ttlMs int64) (leases []Lease, nowMs int64, err error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return nil, 0, err
	}
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		leases, nowMs, err = acquireAllOnce(ctx, q, list, session, now, ttlMs)
		return err
	})
	return leases, nowMs, err
}

func acquireAllOnce(ctx context.Context, q *pgdb.Queries, list []byte, session string, now clockReading, ttlMs int64) ([]Lease, int64, error) {
	rows, err := q.AcquireAll(ctx, pgdb.AcquireAllParams{
		SessionID: session, TtlMs: ttlMs, Now: pgNow(now), Entities: list,
	})
	if rolledBack(err) {
		// Plain errConflict: retry must not repeat it (see above).
		return nil, 0, errConflict
	}
	if err != nil {
		return nil, 0, err
	}
	if len(rows) == 0 {
		return nil, 0, errHeldByOther
	}
	nowMs := rows[0].Now
	leases := pgLeases(rows, func(r pgdb.AcquireAllRow) pgdb.EntitylockLease {
		return pgdb.EntitylockLease{
			Entity: r.Entity, SessionID: session, Token: r.Token,
			AcquiredAt: r.AcquiredAt, ExpiresAt: r.ExpiresAt, Reclaimed: r.Reclaimed,
		}
	})
	return leases, nowMs, nil
}

func (e *postgresEngine) holder(ctx context.Context, entity string, now clockReading) (Lease, int64, error) {
	var row pgdb.LeaseRow
	err := e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		row, err = q.Lease(ctx, pgdb.LeaseParams{Entity: entity, Now: pgNow(now)})
		return err
	})
	return pgLease(row.EntitylockLease), row.Now, noRow(err, errNoLease)
}

func (e *postgresEngine) firstHeld(ctx context.Context, entities []string, session string, now clockReading) (Lease, int64, error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return Lease{}, 0, err
	}
	var row pgdb.FirstHeldRow
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		row, err = q.FirstHeld(ctx, pgdb.FirstHeldParams{Entities: list, SessionID: session, Now: pgNow(now)})
		return err
	})
	return pgLease(row.EntitylockLease), row.Now, noRow(err, errNoLease)
}

// extend is not retried once its connection died: the extension may have
// committed, and a second one would add to it.
func (e *postgresEngine) extend(ctx context.Context, entity, session string, now clockReading, byMs int64) (Lease, error) {
	var row pgdb.ExtendRow
	err := e.retry(ctx, retryRolledBack, func(q *pgdb.Queries) (err error) {
		row, err = q.Extend(ctx, pgdb.ExtendParams{ByMs: byMs, Entity: entity, SessionID: session, Now: pgNow(now)})
		return err
	})
	return pgLease(row.EntitylockLease), noRow(err, errNoLease)
}

func (e *postgresEngine) renew(ctx context.Context, l Lease, now clockReading, ttlMs int64) (Lease, int64, error) {
	var row pgdb.RenewRow
	err := e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		row, err = q.Renew(ctx, pgdb.RenewParams{
			TtlMs: ttlMs, Entity: l.Entity, SessionID: l.SessionID, Token: l.Token, Now: pgNow(now),
		})
		return err
	})
	return pgLease(row.EntitylockLease), row.Now, noRow(err, errNoLease)
}

// The releases are retried when their connection died: a released row
// stays released. Should the lost attempt have committed, the retry finds
// nothing to release and reports none.

func (e *postgresEngine) release(ctx context.Context, entity, session string) (bool, error) {
	var n int64
	err := e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		n, err = q.Release(ctx, pgdb.ReleaseParams{Entity: entity, SessionID: session})
		return err
	})
	return n > 0, err
}

// releaseGrant, Do's release, reports no release only when it knows: Do
// takes that for a grant lost before fn returned. When an attempt's
// connection died after sending it and the retry found nothing to release,
// the lost attempt may have released it: if another grant of the entity is
// live, the lease was lost all the same (false); otherwise the
// connection's error is returned.
func (e *postgresEngine) releaseGrant(ctx context.Context, l Lease) (bool, error) {
	var (
		n     int64
		doubt error
	)
	err := e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		n, err = q.ReleaseGrant(ctx, pgdb.ReleaseGrantParams{Entity: l.Entity, SessionID: l.SessionID, Token: l.Token})
		if inDoubt(err) {
			doubt = err
		}
		return err
	})
	if err == nil && n == 0 && doubt != nil {
		if h, _, herr := e.holder(ctx, l.Entity, serverClock); herr == nil && h.Token != l.Token {
			return false, nil // taken over: lost, whatever the lost attempt did
		}
		return false, fmt.Errorf("release outcome unknown: %w", doubt)
	}
	return n > 0, err
}

// forceRelease is not repeated after a dead connection: see retry.
func (e *postgresEngine) forceRelease(ctx context.Context, entity string) (bool, error) {
	var n int64
	err := e.retry(ctx, retryRolledBack, func(q *pgdb.Queries) (err error) {
		n, err = q.ForceRelease(ctx, entity)
		return err
	})
	return n > 0, err
}

func (e *postgresEngine) releaseSession(ctx context.Context, session string) (entities []string, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		rows, err := q.ReleaseSession(ctx, session)
		entities = make([]string, len(rows))
		for i, r := range rows {
			entities[i] = r.Entity
		}
		return err
	})
	return entities, err
}

func (e *postgresEngine) purgeCandidates(ctx context.Context, after string, max int, now clockReading) (entities []string, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		entities, err = q.PurgeCandidates(ctx, pgdb.PurgeCandidatesParams{After: after, MaxRows: int32(max), Now: pgNow(now)})
		return err
	})
	return entities, err
}

func (e *postgresEngine) purgeBatch(ctx context.Context, entities []string, now clockReading) (n int64, err error) {
	list, err := json.Marshal(entities)
	if err != nil {
		return 0, err
	}
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) (err error) {
		n, err = q.PurgeBatch(ctx, pgdb.PurgeBatchParams{Entities: list, Now: pgNow(now)})
		return err
	})
	return n, err
}

// vacuumDeadRows is how many dead row versions of the lease table (from
// purges, and from every update) make a purge vacuum it: at least this
// many, and twice the live rows.
const vacuumDeadRows = 10_000

// reclaimSpace vacuums the lease table when dead row versions pile up, as
// autovacuum does when it is on and keeping up; without it the table grows
// with every update (the soak saw 108 MiB in 10 minutes on a server with
// autovacuum off). VACUUM takes no lock that blocks reads or writes, and
// SKIP_LOCKED gives up at once when another VACUUM is at work. A role that
// may not vacuum the table leaves it to autovacuum. The file keeps its
// size; VACUUM FULL gives space back to the file system.
func (e *postgresEngine) reclaimSpace(ctx context.Context) error {
	var dead, live int64
	err := e.db.QueryRowContext(ctx, `SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables
		WHERE relid = 'entitylock_leases'::regclass`).Scan(&dead, &live)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (dead < vacuumDeadRows || dead < 2*live) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read dead rows: %w", err)
	}
	if _, err := e.db.ExecContext(ctx, "VACUUM (SKIP_LOCKED) entitylock_leases"); err != nil && pgCode(err) != "42501" {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

func (e *postgresEngine) rowCounts(ctx context.Context, now clockReading) (c RowCounts, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) error {
		r, err := q.RowCounts(ctx, pgNow(now))
		c = RowCounts{Live: r.Live, Expired: r.Expired, Released: r.Released}
		return err
	})
	return c, err
}

func (e *postgresEngine) liveLeases(ctx context.Context, now clockReading) (ls []Lease, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) error {
		rows, err := q.LiveLeases(ctx, pgNow(now))
		ls = pgLeases(rows, func(r pgdb.LiveLeasesRow) pgdb.EntitylockLease { return r.EntitylockLease })
		return err
	})
	return ls, err
}

func (e *postgresEngine) sessionLeases(ctx context.Context, session string, now clockReading) (ls []Lease, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) error {
		rows, err := q.SessionLeases(ctx, pgdb.SessionLeasesParams{SessionID: session, Now: pgNow(now)})
		ls = pgLeases(rows, func(r pgdb.SessionLeasesRow) pgdb.EntitylockLease { return r.EntitylockLease })
		return err
	})
	return ls, err
}

func (e *postgresEngine) allLeases(ctx context.Context) (ls []Lease, err error) {
	err = e.retry(ctx, retryIdempotent, func(q *pgdb.Queries) error {
		rows, err := q.AllLeases(ctx)
		ls = pgLeases(rows, func(r pgdb.AllLeasesRow) pgdb.EntitylockLease { return r.EntitylockLease })
		return err
	})
	return ls, err
}

// guard locks the lease row FOR SHARE in tx: a takeover, renewal or release
// of it waits until tx ends, so tx's writes commit while the lease is held.
func (e *postgresEngine) guard(ctx context.Context, tx *sql.Tx, l Lease, now clockReading) error {
	_, err := pgdb.New(callerTx{tx}).GuardLease(ctx, pgdb.GuardLeaseParams{
		Entity: l.Entity, SessionID: l.SessionID, Token: l.Token, Now: pgNow(now),
	})
	return noRow(err, errNoLease)
}

// withConn runs stmt with pgx's own API on a connection of the pool.
func (e *postgresEngine) withConn(ctx context.Context, stmt func(q *pgdb.Queries) error) error {
	return onPgxConn(ctx, e.db, func(c *pgx.Conn) error { return stmt(pgdb.New(c)) })
}

// onPgxConn runs fn on a connection of db, a pool of pgx's database/sql
// driver, through pgx's own API. A connection that pgx closed on an error,
// or for which fn returns driver.ErrBadConn, is discarded by database/sql
// rather than returned to the pool.
func onPgxConn(ctx context.Context, db *sql.DB, fn func(c *pgx.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("connection of driver %T, not pgx's", dc)
		}
		return fn(sc.Conn())
	})
}

// callerTx runs GuardLease, a statement that reads one row, in the
// caller's *sql.Tx, whose connection database/sql does not lend out. The
// generated code calls nothing else on it.
type callerTx struct{ tx *sql.Tx }

var errNotInCallerTx = errors.New("statement not supported in the caller's transaction")

func (c callerTx) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return c.tx.QueryRowContext(ctx, query, args...)
}

func (c callerTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errNotInCallerTx
}

func (c callerTx) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errNotInCallerTx
}

// pgNow is a statement's "now" parameter: the injected clock's reading, or
// NULL for the server's clock.
func pgNow(r clockReading) pgtype.Int8 { return pgtype.Int8{Int64: r.ms, Valid: r.set} }

// noRow translates the pgx.ErrNoRows (also an sql.ErrNoRows) of a :one
// statement into what the missing row means for that statement.
func noRow(err, meaning error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return meaning
	}
	return err
}

// explain marks PostgreSQL's disk_full (SQLSTATE 53100) as ErrDiskFull.
func (e *postgresEngine) explain(err error) error {
	if pgCode(err) == "53100" {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

func pgLease(r pgdb.EntitylockLease) Lease {
	return Lease{
		Entity:     r.Entity,
		SessionID:  r.SessionID,
		Token:      r.Token,
		AcquiredAt: time.UnixMilli(r.AcquiredAt).UTC(),
		ExpiresAt:  time.UnixMilli(r.ExpiresAt).UTC(),
		Reclaimed:  r.Reclaimed,
	}
}

// pgLeases converts the rows of a query that embeds the lease row.
func pgLeases[R any](rows []R, lease func(R) pgdb.EntitylockLease) []Lease {
	out := make([]Lease, len(rows))
	for i, r := range rows {
		out[i] = pgLease(lease(r))
	}
	return out
}
