package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/entitylock/entitylock/schema"
)

// ErrSchemaTooNew, ErrSchemaDirty and ErrSchemaMissing are returned
// (wrapped) by Open and New when the database's schema cannot be used by
// this code: migrated by a newer release, marked dirty by another tool
// (see schema.Migrations.Force), or, on PostgreSQL, no schema of the search_path
// exists. The database is left untouched.
var (
	ErrSchemaTooNew  = schema.ErrTooNew
	ErrSchemaDirty   = schema.ErrDirty
	ErrSchemaMissing = schema.ErrNoSchema
)

// A Manager hands out sessions over one database and answers questions
// about all leases in it. It is safe for concurrent use. Many Managers, in
// one process or many, may share a database.
type Manager struct {
	db  *sql.DB
	eng engine
	cfg config

	// serverTimed: the database's clock times leases (PostgreSQL without
	// WithClock). skewMs then estimates server clock − local clock.
	serverTimed bool
	skewMs      atomic.Int64

	own *openedDB // the database Open opened, which Close closes; nil under New

	// mu is held shared by every call that touches the database and
	// exclusively by Close, so Close waits for calls in flight.
	mu     sync.RWMutex
	closed bool
	done   chan struct{}  // closed by Close; ends waits and the sweeper
	bg     sync.WaitGroup // the sweeper and the change feed

	listenOnce sync.Once                   // starts the change feed at the first wait or Do (changes.go)
	fileWatch  atomic.Pointer[sqliteWatch] // SQLite's change feed, once started

	queues  waitQueues
	keepers keepers
	stats   counters
}

// newConfig applies opts to the defaults and checks the result, before
// anything is opened or created.
func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return config{}, opError("open", "", err)
	}
	return cfg, nil
}

// newManager migrates db, which k's driver talks to, and returns a Manager
// over it with the checked cfg (newConfig). o is what k opened, which the
// Manager then owns, or nil when db is the caller's.
func newManager(ctx context.Context, k *engineKind, db *sql.DB, o *openedDB, cfg config) (*Manager, error) {
	if err := k.migrations.Migrate(ctx, db); err != nil {
		return nil, opError("open", "", err)
	}
	eng, err := k.adapter(ctx, db, o, cfg.logger)
	if err != nil {
		return nil, opError("open: prepare statements", "", err)
	}
	m := &Manager{
		db: db, eng: eng, cfg: cfg, own: o,
		serverTimed: k.serverClock && !cfg.clockSet,
		done:        make(chan struct{}),
		queues:      waitQueues{linesChanged: make(chan struct{}, 1)},
	}
	if cfg.sweep > 0 {
		m.bg.Go(m.sweep)
	}
	if o != nil && o.run != nil {
		m.bg.Go(func() { o.run(m) })
	}
	return m, nil
}

// lifeContext returns a context for background work that ends when the
// Manager closes (or cancel is called).
func (m *Manager) lifeContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// enter starts a call that touches the database; the caller must call
// m.exit when it returns nil.
func (m *Manager) enter() error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (m *Manager) exit() { m.mu.RUnlock() }

// DB returns the database handle the Manager uses, for the application's
// own tables in the same database: a transaction begun on it can be checked
// with Guard. The Manager owns it when it came from Open; do not close it.
func (m *Manager) DB() *sql.DB { return m.db }

// Session returns a handle that acquires and releases leases as the
// session id. Sessions with the same id share their leases: use one id per
// agent, process or unit of work that must exclude the others.
func (m *Manager) Session(id string) (*Session, error) {
	if err := validateSession(id); err != nil {
		return nil, opError("session", "", err)
	}
	if err := m.enter(); err != nil {
		return nil, opError("session", "", err)
	}
	defer m.exit()
	return &Session{m: m, id: id}, nil
}

// Holder returns the live lease on entity, or an error wrapping ErrNotHeld
// when nobody holds it.
func (m *Manager) Holder(ctx context.Context, entity string) (Lease, error) {
	if err := validateEntity(entity); err != nil {
		return Lease{}, opError("holder", entity, err)
	}
	if err := m.enter(); err != nil {
		return Lease{}, opError("holder", entity, err)
	}
	defer m.exit()
	before := m.localNow()
	l, serverMs, err := m.eng.holder(ctx, entity, m.stmtNow())
	if err != nil {
		return Lease{}, m.fail(ctx, "holder", entity, err)
	}
	m.observe(before, serverMs)
	return l, nil
}

// Locks returns every live lease, ordered by entity.
func (m *Manager) Locks(ctx context.Context) ([]Lease, error) {
	if err := m.enter(); err != nil {
		return nil, opError("locks", "", err)
	}
	defer m.exit()
	leases, err := m.eng.liveLeases(ctx, m.stmtNow())
	if err != nil {
		return nil, m.fail(ctx, "locks", "", err)
	}
	return leases, nil
}

// AllLeases returns every lease row, live or expired (not yet reclaimed or
// purged), ordered by entity. It is meant for operators; use Lease.Live to
// tell them apart.
func (m *Manager) AllLeases(ctx context.Context) ([]Lease, error) {
	if err := m.enter(); err != nil {
		return nil, opError("all leases", "", err)
	}
	defer m.exit()
	leases, err := m.eng.allLeases(ctx)
	if err != nil {
		return nil, m.fail(ctx, "all leases", "", err)
	}
	return leases, nil
}

// ForceRelease removes the lease on entity whoever holds it, live or
// expired, and reports whether there was one. It is the operator's override
// for a stuck holder; the next grant of entity gets a greater token, so a
// fenced resource refuses the evicted holder's late writes.
func (m *Manager) ForceRelease(ctx context.Context, entity string) (bool, error) {
	if err := validateEntity(entity); err != nil {
		return false, opError("force release", entity, err)
	}
	if err := m.enter(); err != nil {
		return false, opError("force release", entity, err)
	}
	defer m.exit()
	found, err := m.eng.forceRelease(ctx, entity)
	if err != nil {
		return false, m.fail(ctx, "force release", entity, err)
	}
	if found {
		m.released(nil, entity)
	}
	return found, nil
}

// Close waits for calls in flight, ends waits in Acquire, cancels the
// functions running under Do (their lease can no longer be renewed: Do
// returns ErrLeaseLost caused by ErrClosed), and frees the
// prepared statements; when the Manager came from Open it also closes the
// database. Leases stay in the database until released or expired. Every
// call after Close fails with ErrClosed. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	close(m.done)
	m.mu.Unlock()
	m.bg.Wait() // the sweeper may be waiting for mu
	m.mu.Lock()
	err := m.eng.close()
	if m.own != nil {
		err = errors.Join(err, m.own.close())
	}
	if err != nil {
		return opError("close", "", err)
	}
	return nil
}

// fail wraps a database error from op. When ctx has ended, the error also
// satisfies errors.Is(err, ctx.Err()) whatever the driver reported.
func (m *Manager) fail(ctx context.Context, op, entity string, err error) error {
	err = m.eng.explain(err)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return opError(op, entity, err)
}
