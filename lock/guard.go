package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Guard checks, inside the caller's transaction tx on the Manager's
// database (begun on Manager.DB or any other handle on the same database),
// that l is still the live lease: same entity, session and token, not
// expired. It fails with ErrNotHeld otherwise.
//
// A write made in tx after a successful Guard commits only if the lease was
// still held when tx began its commit: the fence is enforced by the
// database, not by the holder's timing. On SQLite a write transaction holds
// the database's write lock from BEGIN IMMEDIATE (the default of Open's
// connections and of the ncruces driver) to COMMIT, and every grant needs
// that lock too. On PostgreSQL Guard locks the lease row FOR SHARE until tx
// ends, and a takeover, renewal or release of the row waits for that.
//
//	tx, err := db.BeginTx(ctx, nil)
//	...
//	defer tx.Rollback()
//	if err := m.Guard(ctx, tx, lease); err != nil {
//		return err // lost the entity: write nothing
//	}
//	// ... writes ...
//	return tx.Commit()
//
// With a deferred SQLite transaction the guard still holds: a grant
// committed after Guard's read makes tx's first write fail with
// SQLITE_BUSY.
func (m *Manager) Guard(ctx context.Context, tx *sql.Tx, l Lease) error {
	if tx == nil {
		return opError("guard", l.Entity, fmt.Errorf("%w: nil *sql.Tx", ErrInvalidOption))
	}
	if err := validateEntity(l.Entity); err != nil {
		return opError("guard", l.Entity, err)
	}
	if err := validateSession(l.SessionID); err != nil {
		return opError("guard", l.Entity, err)
	}
	if err := m.enter(); err != nil {
		return opError("guard", l.Entity, err)
	}
	defer m.exit()
	err := m.eng.guard(ctx, tx, l, m.stmtNow())
	switch {
	case errors.Is(err, errNoLease):
		return opError("guard", l.Entity, err)
	case err != nil:
		return m.fail(ctx, "guard", l.Entity, err)
	}
	return nil
}
