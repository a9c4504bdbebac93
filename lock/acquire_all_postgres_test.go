package lock_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
)

// AcquireAll runs as one statement, without a transaction of its own. A
// grant that another transaction commits while the statement waits makes
// it skip that row; the statement then writes none of the others either,
// and the refusal names the row's holder.
func TestPostgresAcquireAllSkippedRowWritesNothing(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := b.NewDSN(t)
	app := "entitylock-all-" + strings.ToLower(t.Name())
	m := mustOpenPath(t, withParams(t, dsn, "application_name", app), lock.WithRetry(lock.RetryPolicy{}))
	raw := testkit.DB(t, dsn)

	// Another session's grant of entity::b, not yet committed.
	tx, err := raw.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO entitylock_leases (entity, session_id, token, acquired_at, expires_at)
		SELECT 'entity::b', 'other', nextval('entitylock_tokens'), c.now, c.now + 3600000
		FROM (SELECT entitylock_clock(NULL) AS now) AS c`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := mustSession(t, m, "merger").AcquireAll(context.Background(), "entity::a", "entity::b", "entity::c")
		done <- err
	}()
	waitFor(t, "AcquireAll to wait for the other grant", func() bool {
		return len(testkit.QueryStrings(t, raw, `SELECT pid::text FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, app)) == 1
	})
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	err = <-done
	var held *lock.HeldError
	if !errors.As(err, &held) || held.Holder.Entity != "entity::b" || held.Holder.SessionID != "other" {
		t.Fatalf("AcquireAll = %v; want a *HeldError naming other's lease on entity::b", err)
	}
	for _, e := range []string{"entity::a", "entity::c"} {
		if l, err := m.Holder(t.Context(), e); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("Holder(%q) = %+v, %v; want ErrNotHeld: the refused AcquireAll wrote it", e, l, err)
		}
	}
}
