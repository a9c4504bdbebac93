package locktest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

func testGuardRejectsStaleHolder(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	app := h.raw(t, dsn)
	if _, err := app.Exec(`CREATE TABLE docs (entity TEXT PRIMARY KEY, body TEXT, token INTEGER)`); err != nil {
		t.Fatal(err)
	}
	a, b := mustSession(t, m, "a"), mustSession(t, m, "b")

	// write updates the document under l, checked by Guard in the same tx.
	write := func(l lock.Lease, body string) error {
		tx, err := app.BeginTx(t.Context(), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := m.Guard(t.Context(), tx, l); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO docs VALUES ($1, $2, $3) ON CONFLICT (entity) DO UPDATE SET body = excluded.body, token = excluded.token`,
			l.Entity, body, l.Token); err != nil {
			return err
		}
		return tx.Commit()
	}
	read := func() (body string) {
		if err := app.QueryRow(`SELECT body FROM docs WHERE entity = 'doc::1'`).Scan(&body); err != nil {
			t.Fatal(err)
		}
		return body
	}

	la := mustAcquire(t, a, "doc::1")
	if err := write(la, "from a"); err != nil {
		t.Fatalf("a's guarded write while holding: %v", err)
	}
	clk.Advance(time.Minute) // a's lease lapses; b takes over
	lb := mustAcquire(t, b, "doc::1")
	if err := write(lb, "from b"); err != nil {
		t.Fatalf("b's guarded write: %v", err)
	}
	if err := write(la, "late write from a"); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("stale holder's write: got err %v, want ErrNotHeld", err)
	}
	if got := read(); got != "from b" {
		t.Errorf("document = %q, want %q", got, "from b")
	}
	// A lease with the right session but an old token is stale too.
	stale := lb
	stale.Token--
	if err := write(stale, "old token"); !errors.Is(err, lock.ErrNotHeld) {
		t.Errorf("old token: got err %v, want ErrNotHeld", err)
	}
	if err := m.Guard(t.Context(), nil, lb); !errors.Is(err, lock.ErrInvalidOption) {
		t.Errorf("nil tx: got err %v, want ErrInvalidOption", err)
	}
}

// A write transaction that passed Guard commits before anyone can take the
// entity over, even when the lease expires while the transaction runs: the
// takeover waits for the transaction (SQLite's write lock; PostgreSQL's FOR
// SHARE row lock).
func testGuardHoldsOffTakeover(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	other := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	app := h.raw(t, dsn)
	if _, err := app.Exec(`CREATE TABLE docs (entity TEXT PRIMARY KEY, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	a, b := mustSession(t, m, "a"), mustSession(t, other, "b")
	la := mustAcquire(t, a, "doc::1")

	tx, err := app.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := m.Guard(t.Context(), tx, la); err != nil {
		t.Fatalf("Guard while holding: %v", err)
	}
	clk.Advance(time.Minute) // a's lease lapses while its transaction runs

	var committed atomic.Bool
	type result struct {
		l         lock.Lease
		err       error
		afterTxOK bool
	}
	done := make(chan result, 1)
	go func() {
		l, err := b.TryAcquire(context.Background(), "doc::1")
		done <- result{l, err, committed.Load()}
	}()
	select {
	case r := <-done:
		t.Fatalf("takeover returned (%+v, %v) while the guarded transaction was open", r.l, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := tx.Exec(`INSERT INTO docs VALUES ($1, $2)`, "doc::1", "from a"); err != nil {
		t.Fatalf("guarded write: %v", err)
	}
	committed.Store(true)
	if err := tx.Commit(); err != nil {
		t.Fatalf("guarded commit: %v", err)
	}
	r := <-done
	if r.err != nil || !r.afterTxOK || r.l.SessionID != "b" || r.l.Token <= la.Token {
		t.Fatalf("takeover = %+v, %v (after commit: %v); want b's grant with a token above %d, after the commit",
			r.l, r.err, r.afterTxOK, la.Token)
	}
}
