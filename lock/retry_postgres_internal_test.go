package lock

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/entitylock/entitylock/db/pgdb"
)

// A statement whose connection died after it was sent is repeated only when
// repeating it is harmless; one that was never sent is repeated whatever it
// does. ForceRelease is not harmless: repeated after its first attempt
// committed, it would release whoever was granted the entity in between.
func TestPostgresRetryClasses(t *testing.T) {
	died := &pgconn.PgError{Code: "57P01"} // the backend was terminated
	tests := []struct {
		name  string
		class retryClass
		err   error
		calls int // attempts made when every attempt fails with err
	}{
		{"idempotent, connection died", retryIdempotent, died, maxAttempts},
		{"idempotent, EOF", retryIdempotent, io.ErrUnexpectedEOF, maxAttempts},
		{"not idempotent, connection died", retryRolledBack, died, 1},
		{"not idempotent, EOF", retryRolledBack, io.ErrUnexpectedEOF, 1},
		{"not idempotent, deadlock", retryRolledBack, &pgconn.PgError{Code: "40P01"}, maxAttempts},
		{"not idempotent, syntax error", retryRolledBack, &pgconn.PgError{Code: "42601"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &postgresEngine{onConn: func(_ context.Context, stmt func(*pgdb.Queries) error) error { return stmt(nil) }}
			calls := 0
			err := e.retry(t.Context(), tt.class, func(*pgdb.Queries) error { calls++; return tt.err })
			if calls != tt.calls || !errors.Is(err, tt.err) {
				t.Errorf("%d attempts, %v; want %d, the statement's error", calls, err, tt.calls)
			}
		})
	}
}

// Only an error after which the statement may have run leaves Do's release
// in doubt.
func TestPostgresInDoubt(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"backend terminated (it may have committed first)", &pgconn.PgError{Code: "57P01"}, true},
		{"EOF after sending", io.ErrUnexpectedEOF, true},
		{"bad connection before use", driver.ErrBadConn, false},
		{"could not connect", &pgconn.ConnectError{}, false},
		{"another error", errors.New("boom"), false},
		{"cancelled", context.Canceled, false},
	} {
		if got := inDoubt(tc.err); got != tc.want {
			t.Errorf("%s: inDoubt = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// queryFails is a pgdb.DBTX whose queries fail with err without reaching a
// server, and counts them.
type queryFails struct {
	pgdb.DBTX
	err   error
	calls int
}

func (q *queryFails) Query(context.Context, string, ...any) (pgx.Rows, error) {
	q.calls++
	return nil, q.err
}

// acquireAll reports a statement the server rolled back for a concurrent
// one as errConflict, once, for its caller to try again; it does not repeat
// it itself, nor report it as contention.
func TestPostgresAcquireAllConflict(t *testing.T) {
	syntax := &pgconn.PgError{Code: "42601"}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"serialization failure", &pgconn.PgError{Code: "40001"}, errConflict},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, errConflict},
		{"syntax error", syntax, syntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := &queryFails{err: tc.err}
			e := &postgresEngine{onConn: func(_ context.Context, stmt func(*pgdb.Queries) error) error { return stmt(pgdb.New(db)) }}
			leases, _, err := e.acquireAll(t.Context(), []string{"a", "b"}, "s", serverClock, 1000)
			if !errors.Is(err, tc.want) || errors.Is(err, errHeldByOther) || len(leases) != 0 || db.calls != 1 {
				t.Errorf("acquireAll = %v, %v after %d statements; want no lease, %v, after 1", leases, err, db.calls, tc.want)
			}
		})
	}
}
