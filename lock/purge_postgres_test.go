package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// PurgeExpired never waits for a row that another transaction has locked:
// it skips it, for a later purge to delete. Purges that waited, deleting
// rows in the order their scans met them, could meet two rows in opposite
// orders (an update moves a row) and deadlock, SQLSTATE 40P01: the
// linearizability check saw it with three Managers purging at once, as the
// sweepers of a fleet do.
func TestPostgresPurgeSkipsLockedRows(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	clk := testkit.NewClock()
	m := mustOpenPath(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(time.Minute))
	s := mustSession(t, m, "a")
	for _, e := range []string{"entity::1", "entity::2", "entity::3"} {
		mustAcquire(t, s, e)
	}
	clk.Advance(time.Minute)

	tx := lockLeaseRow(t, testkit.DB(t, dsn), "entity::2")
	defer tx.Rollback()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // a wait fails here
	defer cancel()
	if n, err := m.PurgeExpired(ctx); err != nil || n != 2 {
		t.Fatalf("PurgeExpired beside a locked row = %d, %v; want 2, nil", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n, err := m.PurgeExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("PurgeExpired once the row is free = %d, %v; want 1, nil", n, err)
	}
}
