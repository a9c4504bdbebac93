package lock_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/entitylock/entitylock/db/pgdb"
	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

func withParams(t *testing.T, dsn string, kv ...string) string {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		dsn = testkit.WithParam(t, dsn, kv[i], kv[i+1])
	}
	return dsn
}

// lockLeaseRow begins a transaction on db that holds entity's lease row
// FOR UPDATE; the caller rolls it back.
func lockLeaseRow(t *testing.T, db *sql.DB, entity string) *sql.Tx {
	t.Helper()
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT 1 FROM entitylock_leases WHERE entity = $1 FOR UPDATE`, entity); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	return tx
}

// A PostgreSQL DSN that does not parse, or names a server that is not
// there, stops Open with a clear error. (The failures of a database in use,
// a read-only one or one whose rows another transaction locks, are the
// conformance suite's EngineFailuresChangeNothing.)
func TestPostgresOpenFailures(t *testing.T) {
	b := locktest.Postgres(t)
	u, err := url.Parse(b.NewDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "127.0.0.1:1"
	unreachable := u.String()

	open := func(dsn string) error {
		m, err := lock.Open(t.Context(), dsn)
		if err == nil {
			m.Close()
		}
		return err
	}
	t.Run("URL does not parse", func(t *testing.T) {
		if err := open("postgres://%zz"); !errors.Is(err, lock.ErrInvalidOption) {
			t.Fatalf("got err %v, want ErrInvalidOption", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		var connErr *pgconn.ConnectError
		if err := open(unreachable); !errors.As(err, &connErr) {
			t.Fatalf("got err %v, want a *pgconn.ConnectError", err)
		}
	})
}

// Without WithClock, PostgreSQL leases are timed by the server's clock, so
// Managers on machines whose clocks are an hour apart agree on every lease,
// and Do renews instead of giving the lease up on a clock that runs ahead.
func TestPostgresServerClock(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	ahead := mustOpenPath(t, dsn, lock.WithTTL(time.Minute),
		lock.WithLocalClock(func() time.Time { return time.Now().Add(time.Hour) }))
	behind := mustOpenPath(t, dsn, lock.WithTTL(time.Minute),
		lock.WithLocalClock(func() time.Time { return time.Now().Add(-time.Hour) }))
	raw := testkit.DB(t, dsn)
	serverNow := func() time.Time {
		var ms int64
		if err := raw.QueryRow(`SELECT entitylock_clock(NULL)`).Scan(&ms); err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(ms)
	}
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -time.Second || d > time.Second {
			t.Errorf("%s = %v, want the server's %v (off by %v)", what, got, want, d)
		}
	}

	t0 := serverNow()
	l := mustAcquire(t, mustSession(t, ahead, "ahead"), "entity::clock")
	near("AcquiredAt", l.AcquiredAt, t0)
	if l.ExpiresAt.Sub(l.AcquiredAt) != time.Minute {
		t.Errorf("lease spans %v, want the 1m TTL", l.ExpiresAt.Sub(l.AcquiredAt))
	}
	near("Now on the machine an hour ahead", ahead.Now(), serverNow())

	// The machine an hour behind sees the lease held, not expired long ago
	// nor granted for an hour and a minute.
	_, err := mustSession(t, behind, "behind").TryAcquire(t.Context(), "entity::clock")
	var he *lock.HeldError
	if !errors.As(err, &he) || he.Holder.Token != l.Token {
		t.Fatalf("TryAcquire from the machine behind: got err %v; want ErrHeld by token %d", err, l.Token)
	}
	near("Now on the machine an hour behind", behind.Now(), serverNow())
	if locks, err := behind.Locks(t.Context()); err != nil || len(locks) != 1 {
		t.Errorf("Locks from the machine behind = %v, %v; want the one lease", locks, err)
	}

	// Do on the machine ahead: its deadlines are measured against the
	// server's clock, so the lease is renewed, not lost at once.
	short := mustOpenPath(t, dsn, lock.WithTTL(600*time.Millisecond), lock.WithRenewInterval(150*time.Millisecond),
		lock.WithLocalClock(func() time.Time { return time.Now().Add(time.Hour) }))
	err = mustSession(t, short, "doer").Do(t.Context(), "entity::do", func(ctx context.Context, l lock.Lease) error {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Second): // past the TTL: only renewals keep the lease
			return nil
		}
	})
	if err != nil {
		t.Fatalf("Do on a machine an hour ahead: %v", err)
	}
	if st := short.Stats(); st.Renewals < 2 || st.LostLeases != 0 {
		t.Errorf("Do: %d renewals, %d lost; want ≥ 2 renewals and none lost", st.Renewals, st.LostLeases)
	}
}

// New takes a *sql.DB of pgx's driver, and leaves it open on Close; Open
// takes postgresql:// as well as postgres://.
func TestPostgresNewAndURLSchemes(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	db := testkit.DB(t, dsn)
	m, err := lock.New(t.Context(), db)
	if err != nil {
		t.Fatalf("New(pgx *sql.DB): %v", err)
	}
	l := mustAcquire(t, mustSession(t, m, "a"), "entity::new")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("Close closed the caller's *sql.DB: %v", err)
	}

	alt := strings.Replace(dsn, "postgres://", "postgresql://", 1)
	m2 := mustOpenPath(t, alt)
	if got, err := m2.Holder(t.Context(), "entity::new"); err != nil || got != l {
		t.Errorf("Holder through postgresql:// = %+v, %v; want %+v", got, err, l)
	}
}

// When the listening connection dies, the Manager reconnects and listens
// again; releases sent in between reach its waiters anyway (the wake-up
// after LISTEN, or their own polling), and later releases wake them through
// notifications again.
func TestPostgresListenerReconnects(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	raw := testkit.DB(t, dsn)
	app := "entitylock-waiter-" + strings.ToLower(t.Name())
	never := lock.RetryPolicy{MaxRetries: -1, BaseDelay: time.Hour}
	holderM := mustOpenPath(t, dsn, lock.WithTTL(time.Hour))
	waiterM := mustOpenPath(t, withParams(t, dsn, "application_name", app), lock.WithTTL(time.Hour), lock.WithRetry(never))
	holder, waiter := mustSession(t, holderM, "holder"), mustSession(t, waiterM, "waiter")

	listeners := func() []string {
		return testkit.QueryStrings(t, raw, `SELECT pid::text FROM pg_stat_activity
			WHERE application_name = $1 AND query = 'SELECT entitylock_listen()'`, app)
	}
	// handoff has the waiter wait for entity until the holder releases it.
	handoff := func(entity string, beforeRelease func()) {
		t.Helper()
		mustAcquire(t, holder, entity)
		refused := waiter.Stats().Contended
		done := make(chan error, 1)
		go func() {
			_, err := waiter.Acquire(context.Background(), entity)
			done <- err
		}()
		waitFor(t, "the waiter to be refused", func() bool { return waiter.Stats().Contended > refused && len(listeners()) == 1 })
		beforeRelease()
		if ok, err := holder.Release(t.Context(), entity); err != nil || !ok {
			t.Fatalf("Release(%q) = %v, %v", entity, ok, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("waiter: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("waiter on %s not granted within 10s of the release", entity)
		}
	}

	handoff("entity::1", func() {})
	old := listeners()
	// Kill the listening connection, then release at once: the
	// notification may go nowhere.
	handoff("entity::2", func() {
		if _, err := raw.Exec(`SELECT pg_terminate_backend($1::int)`, old[0]); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, "a new listening connection", func() bool {
		l := listeners()
		return len(l) == 1 && l[0] != old[0]
	})
	handoff("entity::3", func() {})
}

// A new row's token is drawn before the row is inserted. Should a purge
// delete a greater token in between (here: the sequence is wound back, as
// if the token had been drawn before that purge), the fence refuses the row
// and the grant is retried with a fresh token, above every purged one.
func TestPostgresFenceRefusesTokenBelowPurge(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	clk := testkit.NewClock()
	m := mustOpenPath(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	raw := testkit.DB(t, dsn)
	s := mustSession(t, m, "a")
	for _, e := range []string{"entity::1", "entity::2", "entity::3"} {
		mustAcquire(t, s, e)
	}
	gone := mustAcquire(t, s, "entity::gone")
	clk.Advance(2 * time.Minute)
	if n, err := m.PurgeExpired(t.Context()); err != nil || n != 4 {
		t.Fatalf("PurgeExpired = %d, %v; want 4", n, err)
	}
	var fence int64
	if err := raw.QueryRow(`SELECT last_token FROM entitylock_fence`).Scan(&fence); err != nil || fence != gone.Token {
		t.Fatalf("fence = %d, %v; want the purged token %d", fence, err, gone.Token)
	}

	// A row inserted behind the library's back with a token at the fence.
	_, err := raw.Exec(`INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at)
		VALUES ('entity::raw', 'x', $1, 0, 1)`, fence)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("insert at the fence: got err %v, want SQLSTATE 40001", err)
	}

	// The next token drawn equals the fence: refused, retried, granted above.
	if _, err := raw.Exec(`SELECT setval('entitylock_tokens', $1)`, fence-1); err != nil {
		t.Fatal(err)
	}
	got := mustAcquire(t, s, "entity::gone")
	if got.Token <= fence {
		t.Fatalf("re-grant after the purge has token %d, want > %d", got.Token, fence)
	}
	if _, err := raw.Exec(`SELECT setval('entitylock_tokens', $1)`, fence-1); err != nil {
		t.Fatal(err)
	}
	all, err := mustSession(t, m, "b").AcquireAll(t.Context(), "entity::new1", "entity::new2")
	if err != nil {
		t.Fatalf("AcquireAll after winding the sequence back: %v", err)
	}
	for _, l := range all {
		if l.Token <= fence {
			t.Errorf("%s: token %d, want > %d", l.Entity, l.Token, fence)
		}
	}
}

// Every release statement commits without waiting for the WAL flush, and
// the grant waits for it: each, run in a transaction, leaves
// synchronous_commit so for the rest of that transaction.
func TestPostgresReleasesCommitAsynchronously(t *testing.T) {
	dsn := locktest.Postgres(t).NewDSN(t)
	mustOpenPath(t, dsn) // migrates
	raw := testkit.DB(t, dsn)
	for name, rel := range releaseStatements("entity::async", "a") {
		t.Run(name, func(t *testing.T) {
			withPgxTx(t, raw, func(tx pgx.Tx) {
				releasedAsynchronously(t, tx, name, rel)
			})
		})
	}
}

// releaseStatement runs one of the four release statements on q for the
// grant of entity to session with token, and returns the rows it released.
type releaseStatement func(ctx context.Context, q *pgdb.Queries, token int64) (int64, error)

// releaseStatements returns the four release statements, by name, for
// entity and session.
func releaseStatements(entity, session string) map[string]releaseStatement {
	return map[string]releaseStatement{
		"Release": func(ctx context.Context, q *pgdb.Queries, _ int64) (int64, error) {
			return q.Release(ctx, pgdb.ReleaseParams{Entity: entity, SessionID: session})
		},
		"ReleaseGrant": func(ctx context.Context, q *pgdb.Queries, token int64) (int64, error) {
			return q.ReleaseGrant(ctx, pgdb.ReleaseGrantParams{Entity: entity, SessionID: session, Token: token})
		},
		"ForceRelease": func(ctx context.Context, q *pgdb.Queries, _ int64) (int64, error) {
			return q.ForceRelease(ctx, entity)
		},
		"ReleaseSession": func(ctx context.Context, q *pgdb.Queries, _ int64) (int64, error) {
			names, err := q.ReleaseSession(ctx, session)
			return int64(len(names)), err
		},
	}
}

func releasedAsynchronously(t *testing.T, tx pgx.Tx, name string, rel releaseStatement) {
	t.Helper()
	const entity, session = "entity::async", "a"
	ctx := t.Context()
	q := pgdb.New(tx)
	setting := func() string {
		t.Helper()
		var v string
		if err := tx.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	row, err := q.Acquire(ctx, pgdb.AcquireParams{Entity: entity, SessionID: session, TtlMs: 60_000})
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if got := setting(); got != "on" {
		t.Fatalf("after Acquire, synchronous_commit = %q, want on", got)
	}
	if n, err := rel(ctx, q, row.Token); err != nil || n != 1 {
		t.Fatalf("%s = %d, %v; want 1 row released", name, n, err)
	}
	if got := setting(); got != "off" {
		t.Errorf("after %s, synchronous_commit = %q, want off", name, got)
	}
}
