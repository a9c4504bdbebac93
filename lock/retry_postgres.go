package lock

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/entitylock/entitylock/db/pgdb"
)

// How the PostgreSQL engine retries a statement that failed for a reason
// other than its own outcome:
//
//   - a deadlock (40P01) or serialization failure (40001): the server rolled
//     the statement back, so it is retried, whatever it does (acquireAll
//     reports it to its caller as errConflict instead);
//   - a statement that never reached the server (pgconn.SafeToRetry, or a
//     new connection that could not be made, as when the server is slow
//     to accept), also retried whatever it does, after a pause of 10 ms per
//     attempt so far (database/sql itself retries only taking a
//     connection);
//   - a connection that died under the statement (the backend was
//     terminated, 57P01/57P02/57P03, or the network failed): the statement
//     may or may not have committed, so only statements whose repetition
//     leaves the same state are retried (retryIdempotent): every read; a
//     grant (repeated, it finds its own lease and refreshes it, keeping the
//     token); a renewal (it sets the expiry to now + TTL, never earlier); a
//     session's release (a released row stays released, and only the
//     session's own grants can be touched) and purges. Extend, which adds
//     to the expiry, is not, nor is ForceRelease: repeated after the first
//     attempt committed, it would release whoever was granted the entity in
//     between. Their error reaches the caller. These wait 10 ms per attempt
//     so far too.
//
// Each retry goes to another connection: pgx closes a connection that broke,
// and database/sql discards it. A statement is tried maxAttempts times at
// most.
type retryClass int

const (
	retryRolledBack retryClass = iota // only what the server rolled back or never got
	retryIdempotent                   // also what a dead connection left in doubt
)

// retry runs stmt, each attempt on a connection of the pool taken for it,
// until it succeeds, fails in a way class does not retry, ctx ends or the
// attempts run out.
func (e *postgresEngine) retry(ctx context.Context, class retryClass, stmt func(q *pgdb.Queries) error) error {
	for attempt := 1; ; attempt++ {
		err := e.onConn(ctx, stmt)
		if err == nil || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		died := connDied(err)
		if died {
			e.health.died()
		}
		var connectErr *pgconn.ConnectError
		switch {
		case errors.As(err, &connectErr) || died && class == retryIdempotent:
			// The server is restarting, terminating backends or slow to
			// accept: give it a moment more at each attempt.
			if pause(ctx, time.Duration(attempt)*10*time.Millisecond) != nil {
				return err
			}
		case rolledBack(err) || pgconn.SafeToRetry(err):
		default:
			return err
		}
	}
}

// rolledBack reports a statement the server aborted and rolled back because
// of concurrent transactions: a deadlock or a serialization failure (the
// fence trigger refusing a token a purge overtook, or SERIALIZABLE
// isolation set by the caller).
func rolledBack(err error) bool {
	code := pgCode(err)
	return code == "40P01" || code == "40001"
}

// connDied reports an error that came from the connection, not from the
// statement: the backend was shut down or terminated, or the connection
// was broken or closed.
func connDied(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &netErr) && !netErr.Timeout() ||
		pgconn.SafeToRetry(err) // a connection found closed before sending
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// connHealth makes the connections of a pool that Open made ping the server
// before they are reused when a connection of the pool died after they were
// last used: backends are usually terminated together (a restart, a
// failover, an operator's pg_terminate_backend), and an idle connection to
// a terminated backend fails its next statement. Connections idle for over
// a second ping anyway (pgx's default).
type connHealth struct {
	lastDeath atomic.Int64 // Unix nanoseconds; 0: none seen
}

func (h *connHealth) died() {
	if h != nil {
		h.lastDeath.Store(time.Now().UnixNano())
	}
}

// shouldPing is a stdlib.OptionShouldPing callback.
func (h *connHealth) shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	lastUse := time.Now().Add(-p.IdleDuration).UnixNano()
	return p.IdleDuration > time.Second || lastUse <= h.lastDeath.Load()
}

// inDoubt reports an error after which the statement may have committed:
// its connection died once the statement was sent. A connection that could
// not be made, or one database/sql found bad before use, never sent it.
func inDoubt(err error) bool {
	var connectErr *pgconn.ConnectError
	return connDied(err) && !pgconn.SafeToRetry(err) &&
		!errors.As(err, &connectErr) && !errors.Is(err, driver.ErrBadConn)
}
