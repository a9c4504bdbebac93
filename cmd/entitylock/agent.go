package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// appTables are the demo's application tables, beside the lock tables (in
// the same database, an update and the Guard that checks its lease share
// one transaction).
//   - demo_entities: the records agents update; updates counts the writes,
//     each a read-modify-write whose read happens outside the write's
//     transaction, so two holders at once would lose an update.
//   - demo_grants: one row per grant, written by the agent that held it, for
//     the independent check.
//   - demo_agents: per-agent counters, flushed while the demo runs.
//
// The same SQL runs on SQLite and PostgreSQL: BIGINT, BOOLEAN and $n
// placeholders mean the same to both.
type appTables struct{}

var appTableNames = strings.NewReplacer("{entities}", "demo_entities", "{grants}", "demo_grants", "{agents}", "demo_agents")

// sql replaces {entities}, {grants} and {agents} in query with the tables.
func (appTables) sql(query string) string { return appTableNames.Replace(query) }

const demoSchema = `
CREATE TABLE IF NOT EXISTS {entities} (
    entity     TEXT   PRIMARY KEY,
    updates    BIGINT NOT NULL DEFAULT 0,
    last_token BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {grants} (
    entity     TEXT    NOT NULL,
    token      BIGINT  NOT NULL,
    agent      TEXT    NOT NULL,
    asked_ns   BIGINT  NOT NULL, -- Acquire called
    enter_ns   BIGINT  NOT NULL, -- lease in hand
    exit_ns    BIGINT  NOT NULL, -- commit asked, or work given up (a crash: the lease's expiry)
    wrote      BOOLEAN NOT NULL, -- the guarded write committed
    crashed    BOOLEAN NOT NULL,
    reclaimed  BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS {agents} (
    agent     TEXT   PRIMARY KEY,
    proc      BIGINT NOT NULL,
    grants    BIGINT NOT NULL DEFAULT 0,
    waits     BIGINT NOT NULL DEFAULT 0,
    gave_up   BIGINT NOT NULL DEFAULT 0,
    takeovers BIGINT NOT NULL DEFAULT 0,
    lost      BIGINT NOT NULL DEFAULT 0,
    rejected  BIGINT NOT NULL DEFAULT 0,
    crashed   BIGINT NOT NULL DEFAULT 0
);
`

// create makes the tables, or empties those a kept run left, and adds the
// entities.
func (t appTables) create(ctx context.Context, db *sql.DB, entities int) error {
	if _, err := db.ExecContext(ctx, t.sql(demoSchema)); err != nil {
		return fmt.Errorf("create the demo's tables: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Each run starts its application tables afresh, so that its summary and
	// check cover this run alone (leases of an earlier run's crashed agents
	// may still be live, and are waited for like any other).
	for _, table := range []string{"{entities}", "{grants}", "{agents}"} {
		if _, err := tx.ExecContext(ctx, t.sql("DELETE FROM "+table)); err != nil {
			return err
		}
	}
	for i := range entities {
		if _, err := tx.ExecContext(ctx, t.sql(`INSERT INTO {entities} (entity) VALUES ($1)`), entityName(i)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// drop removes the tables.
func (t appTables) drop(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, t.sql("DROP TABLE IF EXISTS {entities}; DROP TABLE IF EXISTS {grants}; DROP TABLE IF EXISTS {agents}"))
	return err
}

// agentSpec is what an agent needs to run, in this process or a worker.
type agentSpec struct {
	name     string
	proc     int
	entities int
	// Times count from when the agents of a process start, so that a
	// worker process slow to start still works for the whole run.
	runFor     time.Duration
	crashAfter time.Duration // < 0: never crashes
	seed       uint64
}

// agentCounts are the per-agent figures of the summary.
type agentCounts struct {
	Agent     string `json:"agent"`
	Proc      int    `json:"proc"`
	Grants    int64  `json:"grants"`
	Waits     int64  `json:"waits"`
	GaveUp    int64  `json:"gave_up"`
	Takeovers int64  `json:"takeovers"`
	Lost      int64  `json:"lost"`
	Rejected  int64  `json:"rejected"`
	Crashed   int64  `json:"crashed"`
}

func entityName(i int) string { return fmt.Sprintf("entity::%03d", i) }

// runAgent takes skewed-random entities for spec.runFor from start,
// updating each under a lease with Do and a write checked by Guard, and
// records every grant. An agent due to crash takes one more entity after
// spec.crashAfter and
// walks away: no renewal, no release, so others wait for the TTL. (Should it
// find every entity it tries held until the run ends, it has crashed
// holding nothing.)
func runAgent(ctx context.Context, m *lock.Manager, tables appTables, spec agentSpec, start time.Time) error {
	s, err := m.Session(spec.name)
	if err != nil {
		return err
	}
	db := m.DB()
	rng := rand.New(rand.NewPCG(spec.seed, 0x5eed))
	zipf := rand.NewZipf(rng, 1.2, 1, uint64(spec.entities-1))
	c := agentCounts{Agent: spec.name, Proc: spec.proc}
	lastFlush := time.Now()
	defer func() { flushCounts(context.WithoutCancel(ctx), db, tables, s, &c) }()

	until, crashAt := start.Add(spec.runFor), start.Add(spec.crashAfter)
	for ctx.Err() == nil && time.Now().Before(until) {
		entity := entityName(int(zipf.Uint64()))
		asked := time.Now()
		if spec.crashAfter >= 0 && asked.After(crashAt) {
			// Due to crash: take an entity (another one if this is held)
			// and walk away holding it.
			c.Crashed = 1
			held, err := crash(ctx, db, tables, s, entity, asked, &c)
			if held || err != nil {
				return err
			}
			continue
		}
		var g grantRow
		err := s.Do(ctx, entity, func(ctx context.Context, l lock.Lease) error {
			g = grantRow{entity: entity, token: l.Token, agent: spec.name, asked: asked, enter: time.Now(), reclaimed: l.Reclaimed}
			werr := update(ctx, m, tables, l, rng, &g.exit)
			if g.exit.IsZero() { // no commit tried
				g.exit = time.Now()
			}
			g.wrote = werr == nil
			return werr
		})
		// Every grant is counted and recorded, also one that Ctrl-C cut
		// short, so that the summary's totals agree with its check.
		if g.token != 0 {
			c.Grants++
			if g.reclaimed {
				c.Takeovers++
			}
			if err := g.insert(context.WithoutCancel(ctx), db, tables); err != nil {
				return err
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, lock.ErrLeaseLost):
			c.Lost++
		case errors.Is(err, lock.ErrNotHeld): // Guard refused a stale write
			c.Rejected++
		case errors.Is(err, lock.ErrHeld):
			c.GaveUp++
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			// Do's release timed out (the database was busy for a TTL):
			// the lease expires by itself, and the next agent takes over.
		default:
			return fmt.Errorf("%s: %w", spec.name, err)
		}
		if time.Since(lastFlush) > 200*time.Millisecond {
			if err := flushCounts(ctx, db, tables, s, &c); err != nil && ctx.Err() == nil {
				return err
			}
			lastFlush = time.Now()
		}
	}
	return nil
}

// update is the agent's work on entity under lease l: read the record, "think"
// for up to 2ms (standing in for an LLM call), then write it back in a
// transaction checked by Guard.
//
// Once begun, the write transaction is not cancelled with ctx (Ctrl-C, or
// the lease lost): a commit cut short by a cancelled context may have
// reached the database while the caller sees an error, and the grant would
// be recorded as not having written. Guard, inside the transaction, is what
// keeps a write without a current lease out.
//
// update sets *committing to the time it asks for the commit: the end of
// the grant for the check. No other agent can be granted the entity before
// the commit ends, since Guard holds the write lock (SQLite) or the lease
// row (PostgreSQL) until then, even if the lease expires meanwhile.
func update(ctx context.Context, m *lock.Manager, tables appTables, l lock.Lease, rng *rand.Rand, committing *time.Time) error {
	db := m.DB()
	var n int64
	if err := db.QueryRowContext(ctx, tables.sql(`SELECT updates FROM {entities} WHERE entity = $1`), l.Entity).Scan(&n); err != nil {
		return err
	}
	select {
	case <-time.After(time.Duration(rng.Int64N(int64(2 * time.Millisecond)))):
	case <-ctx.Done():
		return ctx.Err()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tx, err := db.BeginTx(wctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := m.Guard(wctx, tx, l); err != nil {
		return err
	}
	if _, err := tx.ExecContext(wctx, tables.sql(`UPDATE {entities} SET updates = $1, last_token = $2 WHERE entity = $3`),
		n+1, l.Token, l.Entity); err != nil {
		return err
	}
	*committing = time.Now()
	return tx.Commit()
}

// crash takes entity and abandons the lease, as an agent process that died
// would; it reports whether it got the entity.
func crash(ctx context.Context, db *sql.DB, tables appTables, s *lock.Session, entity string, asked time.Time, c *agentCounts) (bool, error) {
	l, err := s.Acquire(ctx, entity)
	switch {
	case errors.Is(err, lock.ErrHeld) || ctx.Err() != nil:
		return false, nil // the caller tries another entity, or stops
	case err != nil:
		return false, fmt.Errorf("%s: %w", s.ID(), err)
	}
	c.Grants++
	if l.Reclaimed {
		c.Takeovers++
	}
	g := grantRow{entity: entity, token: l.Token, agent: s.ID(), asked: asked, enter: time.Now(),
		exit: l.ExpiresAt, crashed: true, reclaimed: l.Reclaimed}
	return true, g.insert(context.WithoutCancel(ctx), db, tables)
}

type grantRow struct {
	entity                    string
	token                     int64
	agent                     string
	asked, enter, exit        time.Time
	wrote, crashed, reclaimed bool
}

func (g grantRow) insert(ctx context.Context, db *sql.DB, tables appTables) error {
	_, err := db.ExecContext(ctx, tables.sql(`INSERT INTO {grants}
		(entity, token, agent, asked_ns, enter_ns, exit_ns, wrote, crashed, reclaimed)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`),
		g.entity, g.token, g.agent, g.asked.UnixNano(), g.enter.UnixNano(), g.exit.UnixNano(),
		g.wrote, g.crashed, g.reclaimed)
	return err
}

// flushCounts stores the agent's counters; waits come from its session.
func flushCounts(ctx context.Context, db *sql.DB, tables appTables, s *lock.Session, c *agentCounts) error {
	c.Waits = s.Stats().Waits.Count
	_, err := db.ExecContext(ctx, tables.sql(`INSERT INTO {agents}
		(agent, proc, grants, waits, gave_up, takeovers, lost, rejected, crashed)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (agent) DO UPDATE SET grants = excluded.grants, waits = excluded.waits,
		gave_up = excluded.gave_up, takeovers = excluded.takeovers, lost = excluded.lost,
		rejected = excluded.rejected, crashed = excluded.crashed`),
		c.Agent, c.Proc, c.Grants, c.Waits, c.GaveUp, c.Takeovers, c.Lost, c.Rejected, c.Crashed)
	return err
}
