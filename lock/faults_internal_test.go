package lock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ncruces/go-sqlite3"
	sqlitedriver "github.com/ncruces/go-sqlite3/driver"
)

// A fault makes statements whose SQL contains match fail: before they run,
// or after they ran (and, outside a transaction, committed), as when the
// answer is lost. times < 0 fails every match.
type fault struct {
	match string
	after bool
	err   error
	times int
}

// faults is a database handle wrapper's rule book; its zero value injects
// nothing.
type faults struct {
	mu    sync.Mutex
	rules []*fault
	hits  int
}

func (f *faults) set(rules ...*fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = rules
}

// check returns the error to inject into query at this point, if any.
func (f *faults) check(query string, after bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.after == after && r.times != 0 && strings.Contains(query, r.match) {
			if r.times > 0 {
				r.times--
			}
			f.hits++
			return r.err
		}
	}
	return nil
}

func (f *faults) hitCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// faultyConnector wraps the ncruces driver's connections.
type faultyConnector struct {
	driver.Connector
	f *faults
}

func (c faultyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &faultyConn{conn.(sqlitedriver.Conn), c.f}, nil
}

type faultyConn struct {
	sqlitedriver.Conn
	f *faults
}

func (c *faultyConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &faultyStmt{s, query, c.f}, nil
}

func (c *faultyConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *faultyConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.f.check(query, false); err != nil {
		return nil, err
	}
	r, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	if err == nil {
		err = c.f.check(query, true)
	}
	return r, err
}

func (c *faultyConn) CheckNamedValue(v *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(v)
}

func (c *faultyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return faultyTx{tx, c.f}, nil
}

type faultyTx struct {
	driver.Tx
	f *faults
}

func (t faultyTx) Commit() error {
	if err := t.f.check("COMMIT", false); err != nil {
		t.Tx.Rollback()
		return err
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	return t.f.check("COMMIT", true)
}

type faultyStmt struct {
	driver.Stmt
	query string
	f     *faults
}

func (s *faultyStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.f.check(s.query, false); err != nil {
		return nil, err
	}
	r, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err == nil {
		err = s.f.check(s.query, true)
	}
	return r, err
}

func (s *faultyStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.f.check(s.query, false); err != nil {
		return nil, err
	}
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	if inj := s.f.check(s.query, true); inj != nil {
		// Run the statement to completion, then lose its answer.
		dest := make([]driver.Value, len(rows.Columns()))
		for rows.Next(dest) == nil {
		}
		rows.Close()
		return nil, inj
	}
	return rows, nil
}

func (s *faultyStmt) CheckNamedValue(v *driver.NamedValue) error {
	return s.Stmt.(driver.NamedValueChecker).CheckNamedValue(v)
}

// openFaulty opens a Manager on a file through the fault-injecting wrapper.
func openFaulty(t *testing.T, opts ...Option) (*Manager, *faults) {
	t.Helper()
	uri, _, _, err := buildDSN(filepath.Join(t.TempDir(), "faults.db"), Create)
	if err != nil {
		t.Fatal(err)
	}
	base, err := (&sqlitedriver.SQLite{}).OpenConnector(uri)
	if err != nil {
		t.Fatal(err)
	}
	f := &faults{}
	db := sql.OpenDB(faultyConnector{base, f})
	t.Cleanup(func() { db.Close() })
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newManager(t.Context(), sqliteKind, db, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, f
}

var errBusy error = sqlite3.BUSY

func TestFaultsOnGrant(t *testing.T) {
	t.Run("busy before: Acquire returns it at once, nothing stored", func(t *testing.T) {
		m, f := openFaulty(t, WithRetry(RetryPolicy{MaxRetries: 5, BaseDelay: time.Millisecond}))
		s, _ := m.Session("a")
		f.set(&fault{match: "name: Acquire", err: errBusy, times: 1})
		if _, err := s.Acquire(t.Context(), "e"); !errors.Is(err, sqlite3.BUSY) {
			t.Fatalf("got err %v, want BUSY", err)
		}
		if _, err := m.Holder(t.Context(), "e"); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Holder err = %v, want ErrNotHeld", err)
		}
	})
	t.Run("answer lost after commit: a retry by the same session refreshes it", func(t *testing.T) {
		m, f := openFaulty(t)
		s, _ := m.Session("a")
		f.set(&fault{match: "name: Acquire", after: true, err: errBusy, times: 1})
		if _, err := s.TryAcquire(t.Context(), "e"); !errors.Is(err, sqlite3.BUSY) {
			t.Fatalf("got err %v, want BUSY", err)
		}
		stored, err := m.Holder(t.Context(), "e")
		if err != nil || stored.SessionID != "a" {
			t.Fatalf("Holder = %+v, %v; want the grant that committed", stored, err)
		}
		again, err := s.TryAcquire(t.Context(), "e")
		if err != nil || again.Token != stored.Token || again.AcquiredAt != stored.AcquiredAt {
			t.Fatalf("retry = %+v, %v; want a refresh of token %d", again, err, stored.Token)
		}
	})
	t.Run("bad connection before: database/sql retries on a new one", func(t *testing.T) {
		m, f := openFaulty(t)
		s, _ := m.Session("a")
		f.set(&fault{match: "name: Acquire", err: driver.ErrBadConn, times: 1})
		if _, err := s.TryAcquire(t.Context(), "e"); err != nil {
			t.Fatalf("TryAcquire: %v", err)
		}
		if f.hitCount() != 1 {
			t.Fatalf("fault hit %d times, want 1", f.hitCount())
		}
	})
}

func TestFaultsOnRelease(t *testing.T) {
	m, f := openFaulty(t)
	s, _ := m.Session("a")
	if _, err := s.TryAcquire(t.Context(), "e"); err != nil {
		t.Fatal(err)
	}
	f.set(&fault{match: "name: Release :", err: errBusy, times: 1})
	if _, err := s.Release(t.Context(), "e"); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("failed before: got err %v, want BUSY", err)
	}
	if _, err := m.Holder(t.Context(), "e"); err != nil {
		t.Fatalf("lease gone after a failed release: %v", err)
	}
	f.set(&fault{match: "name: Release :", after: true, err: errBusy, times: 1})
	if _, err := s.Release(t.Context(), "e"); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("failed after: got err %v, want BUSY", err)
	}
	if _, err := m.Holder(t.Context(), "e"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("lease still there after the release committed: %v", err)
	}
	if ok, err := s.Release(t.Context(), "e"); ok || err != nil {
		t.Fatalf("second release = %v, %v; want false, nil", ok, err)
	}
}

// AcquireAll runs AcquireAllFree first and, when that statement cannot
// grant all (here: the session already holds y), AcquireAll. A failure of
// either leaves the database as it was; an answer of either lost after it
// committed leaves the grants, and the next call refreshes them with the
// same tokens.
func TestFaultsOnAcquireAll(t *testing.T) {
	for _, tc := range []struct {
		name, match string
		held        []string
	}{
		{"AcquireAllFree", "name: AcquireAllFree :", nil},
		{"AcquireAll", "name: AcquireAll :", []string{"y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := openFaulty(t)
			s, _ := m.Session("a")
			for _, e := range tc.held {
				if _, err := s.TryAcquire(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
			before, err := m.AllLeases(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			f.set(&fault{match: tc.match, err: errBusy, times: 1})
			if _, err := s.AcquireAll(t.Context(), "x", "y", "z"); !errors.Is(err, sqlite3.BUSY) {
				t.Fatalf("failed before: got err %v, want BUSY", err)
			}
			after, err := m.AllLeases(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Fatalf("leases changed by the failed call (-before +after):\n%s", diff)
			}
			f.set(&fault{match: tc.match, after: true, err: errBusy, times: 1})
			if _, err := s.AcquireAll(t.Context(), "x", "y", "z"); !errors.Is(err, sqlite3.BUSY) {
				t.Fatalf("failed after: got err %v, want BUSY", err)
			}
			stored, err := s.Locks(t.Context())
			if err != nil || len(stored) != 3 {
				t.Fatalf("after a lost answer: %d leases, %v; want all 3 granted", len(stored), err)
			}
			again, err := s.AcquireAll(t.Context(), "x", "y", "z")
			if err != nil {
				t.Fatal(err)
			}
			for i := range again {
				if again[i].Token != stored[i].Token || again[i].AcquiredAt != stored[i].AcquiredAt {
					t.Errorf("retry changed %s: %+v, was %+v", again[i].Entity, again[i], stored[i])
				}
			}
		})
	}
}

// Renewals that fail for a while are retried and the work goes on; when
// they keep failing, the local deadline ends it.
func TestFaultsOnRenewal(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m, f := openFaulty(t, WithClock(clock), WithTTL(time.Minute), WithRenewInterval(2*time.Millisecond))
	s, _ := m.Session("a")

	t.Run("transient", func(t *testing.T) {
		f.set(&fault{match: "name: Renew", err: errBusy, times: 3})
		err := s.Do(t.Context(), "e", func(ctx context.Context, l Lease) error {
			deadline := time.Now().Add(10 * time.Second)
			for s.Stats().Renewals < 2 {
				if time.Now().After(deadline) || ctx.Err() != nil {
					return errors.New("no renewal got through")
				}
				time.Sleep(time.Millisecond)
			}
			return ctx.Err()
		})
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		if f.hitCount() != 3 {
			t.Errorf("%d injected failures, want 3", f.hitCount())
		}
	})
	t.Run("persistent", func(t *testing.T) {
		f.set(&fault{match: "name: Renew", err: errBusy, times: -1})
		err := s.Do(t.Context(), "e", func(ctx context.Context, l Lease) error {
			advance(time.Minute - 6*time.Second) // to the local deadline
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("not cancelled")
			}
		})
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Do = %v, want ErrLeaseLost", err)
		}
		f.set()
		if _, err := m.Holder(t.Context(), "e"); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Do did not release the lease it lost track of: %v", err)
		}
	})
}

// A release that fails after fn returned is told apart from fn's own
// result, and the lease is left to expire.
func TestFaultsOnDoRelease(t *testing.T) {
	fnErr := errors.New("fn failed")
	tests := []struct {
		name    string
		fnErr   error
		wantErr []error // each must satisfy errors.Is
		notErr  []error // none may
	}{
		{"fn succeeded", nil, []error{ErrNotReleased, sqlite3.BUSY}, []error{ErrLeaseLost}},
		{"fn failed", fnErr, []error{fnErr}, []error{ErrNotReleased, sqlite3.BUSY}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := openFaulty(t)
			s, _ := m.Session("a")
			f.set(&fault{match: "name: ReleaseGrant", err: errBusy, times: -1})
			err := s.Do(t.Context(), "e", func(context.Context, Lease) error { return tt.fnErr })
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Do = %v, want errors.Is %v", err, want)
				}
			}
			for _, not := range tt.notErr {
				if errors.Is(err, not) {
					t.Errorf("Do = %v, must not satisfy errors.Is %v", err, not)
				}
			}
			f.set()
			if l, err := m.Holder(t.Context(), "e"); err != nil || l.SessionID != "a" {
				t.Errorf("Holder = %+v, %v; want the lease left to expire", l, err)
			}
		})
	}
}
