package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"

	"github.com/entitylock/entitylock/db/sqlitedb"
)

// rawLiveOne runs the LiveOne statement of queries/sqlite on the SQLite
// connection under a *sql.Conn, bypassing database/sql: the change watcher
// reads one waited entity after every commit it finds, and database/sql's
// share of such a read (a goroutine per query that a cancellable context
// starts, the rows' bookkeeping) was about as large as SQLite's own
// (BENCHMARKS.md, "Issue 13, second follow-up"). The statement is prepared
// once and used only inside conn.Raw, on the watcher's goroutine.
type rawLiveOne struct {
	conn  *sql.Conn
	st    *sqlite3.Stmt
	bound string // the entity bound to st ("" none): a reset keeps it
}

// errNoRawConn: the driver's connection does not expose its SQLite
// connection (it is not github.com/ncruces/go-sqlite3/driver's).
var errNoRawConn = errors.New("no raw SQLite connection")

// prepareLiveOne prepares LiveOne on conn's SQLite connection.
func prepareLiveOne(conn *sql.Conn) (*rawLiveOne, error) {
	r := &rawLiveOne{conn: conn}
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(interface{ Raw() *sqlite3.Conn })
		if !ok {
			return errNoRawConn
		}
		st, _, err := c.Raw().Prepare(sqlitedb.LiveOne)
		r.st = st
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prepare LiveOne: %w", err)
	}
	return r, nil
}

// read returns the live grant on entity at now, if there is one. ctx
// interrupts the statement, as the driver's own calls do.
func (r *rawLiveOne) read(ctx context.Context, entity string, now clockReading) (g grant, held bool, err error) {
	err = r.conn.Raw(func(any) error {
		c := r.st.Conn()
		defer c.SetInterrupt(c.SetInterrupt(ctx))
		if entity != r.bound {
			// Binding text copies it into SQLite's memory: once per entity.
			r.bound = ""
			if err := r.st.BindText(1, entity); err != nil {
				return err
			}
			r.bound = entity
		}
		if err := r.st.BindInt64(2, now.ms); err != nil {
			return err
		}
		for r.st.Step() { // to the end: see queries/sqlite
			g, held = grant{session: r.st.ColumnText(0), token: r.st.ColumnInt64(1)}, true
		}
		if err := r.st.Err(); err != nil {
			r.st.Reset()
			return err
		}
		return r.st.Reset()
	})
	return g, held, err
}

// close finalizes the statement; conn stays open.
func (r *rawLiveOne) close() {
	r.conn.Raw(func(any) error { return r.st.Close() })
}
