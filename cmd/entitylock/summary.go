package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// summary is what the demo prints at the end, as a table or JSON. Every
// integer in its JSON is below 2^53, or a string (the seed), so that JSON
// readers that use floating point keep it exact.
type summary struct {
	Database  string        `json:"database"`
	Agents    int           `json:"agents"`
	Procs     int           `json:"procs"`
	Entities  int           `json:"entities"`
	Duration  string        `json:"duration"`
	TTL       string        `json:"ttl"`
	CrashRate float64       `json:"crash_rate"`
	Seed      uint64        `json:"seed,string"`
	PerAgent  []agentCounts `json:"per_agent"`
	Totals    agentCounts   `json:"totals"`
	Handoff   handoffs      `json:"handoff"`
	Check     checkResult   `json:"check"`

	// For the report.
	grants     []grantRec
	start, end time.Time
}

// handoffs is the time from a holder finishing its work to the next waiter
// holding the entity, over the grants whose agent was already waiting; a
// handoff between agents of two processes crosses processes (on SQLite a
// watch on the database file wakes the waiter, on PostgreSQL a
// notification).
type handoffs struct {
	InProcess    handoffStats `json:"in_process"`
	CrossProcess handoffStats `json:"cross_process"`
}

type handoffStats struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`

	latencies []time.Duration // sorted
}

func newHandoffStats(ds []time.Duration) handoffStats {
	if len(ds) == 0 {
		return handoffStats{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
	}
	return handoffStats{Count: len(ds), P50Ms: q(0.50), P99Ms: q(0.99), latencies: ds}
}

// checkResult is the verdict of the independent check, made from the
// application tables alone.
type checkResult struct {
	Passed   bool     `json:"passed"`
	Grants   int      `json:"grants"`
	Writes   int      `json:"writes"`
	Failures []string `json:"failures,omitempty"`
}

type grantRec struct {
	entity             string
	token              int64
	agent              string
	asked, enter, exit int64
	wrote, crashed     bool
	reclaimed          bool
}

func summarize(ctx context.Context, db *sql.DB, c *demoConfig, tables appTables) (*summary, error) {
	s := &summary{
		Database: display(c.db), Agents: c.agents, Procs: c.procs, Entities: c.entities,
		Duration: c.duration.String(), TTL: c.ttl.String(), CrashRate: c.crashRate, Seed: c.seed,
		Totals: agentCounts{Agent: "total"},
	}
	rows, err := db.QueryContext(ctx, tables.sql(`SELECT agent, proc, grants, waits, gave_up, takeovers, lost, rejected, crashed
		FROM {agents} ORDER BY agent`))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var a agentCounts
		if err := rows.Scan(&a.Agent, &a.Proc, &a.Grants, &a.Waits, &a.GaveUp, &a.Takeovers, &a.Lost, &a.Rejected, &a.Crashed); err != nil {
			rows.Close()
			return nil, err
		}
		s.PerAgent = append(s.PerAgent, a)
		t := &s.Totals
		t.Grants += a.Grants
		t.Waits += a.Waits
		t.GaveUp += a.GaveUp
		t.Takeovers += a.Takeovers
		t.Lost += a.Lost
		t.Rejected += a.Rejected
		t.Crashed += a.Crashed
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := s.check(ctx, db, tables); err != nil {
		return nil, err
	}
	return s, nil
}

// check verifies, independently of the lock code:
//   - no lost update: each entity's counter equals the grants that wrote it;
//   - fencing: tokens strictly increase per entity in grant order, over the
//     grants that wrote or crashed holding the entity;
//   - mutual exclusion: no two grants of an entity that wrote, or crashed
//     holding it, overlapped in time (a grant lasts until its agent asked
//     for the commit, a crashed grant until its expiry);
//   - the agents' counters add up to the grants recorded.
func (s *summary) check(ctx context.Context, db *sql.DB, tables appTables) error {
	r := &s.Check
	fail := func(format string, args ...any) {
		if len(r.Failures) < 20 {
			r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
		}
	}

	rows, err := db.QueryContext(ctx, tables.sql(`SELECT e.entity, e.updates,
		(SELECT count(*) FROM {grants} g WHERE g.entity = e.entity AND g.wrote)
		FROM {entities} e ORDER BY e.entity`))
	if err != nil {
		return err
	}
	for rows.Next() {
		var entity string
		var updates, writes int
		if err := rows.Scan(&entity, &updates, &writes); err != nil {
			rows.Close()
			return err
		}
		r.Writes += writes
		if updates != writes {
			fail("%s: counter %d but %d grants wrote it (lost updates)", entity, updates, writes)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}

	rows, err = db.QueryContext(ctx, tables.sql(`SELECT entity, token, agent, asked_ns, enter_ns, exit_ns, wrote, crashed, reclaimed
		FROM {grants} ORDER BY entity, enter_ns, token`))
	if err != nil {
		return err
	}
	var grants []grantRec
	for rows.Next() {
		var g grantRec
		if err := rows.Scan(&g.entity, &g.token, &g.agent, &g.asked, &g.enter, &g.exit, &g.wrote, &g.crashed, &g.reclaimed); err != nil {
			rows.Close()
			return err
		}
		grants = append(grants, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	r.Grants = len(grants)
	s.grants = grants

	proc := map[string]int{}
	for _, a := range s.PerAgent {
		proc[a.Agent] = a.Proc
	}
	var in, cross []time.Duration
	var prev *grantRec // the entity's previous holder: a grant that wrote or crashed
	for i := range grants {
		g := &grants[i]
		if prev != nil && prev.entity != g.entity {
			prev = nil
		}
		if !g.wrote && !g.crashed || g.exit < g.enter {
			// Lost, refused by Guard, or cut short: it changed nothing,
			// and its agent may have noted its times late (a lease that
			// expired while the agent was descheduled). Likewise a crash
			// noted only after its lease had expired.
			continue
		}
		if prev != nil {
			if g.token <= prev.token {
				fail("%s: token %d (%s) after token %d (%s): not increasing", g.entity, g.token, g.agent, prev.token, prev.agent)
			}
			if g.enter < prev.exit {
				fail("%s: %s (token %d) entered %v before %s (token %d) left",
					g.entity, g.agent, g.token, time.Duration(prev.exit-g.enter), prev.agent, prev.token)
			}
			if !prev.crashed && g.asked < prev.exit {
				d := time.Duration(g.enter - prev.exit)
				if proc[g.agent] == proc[prev.agent] {
					in = append(in, d)
				} else {
					cross = append(cross, d)
				}
			}
		}
		prev = g
	}
	s.Handoff = handoffs{InProcess: newHandoffStats(in), CrossProcess: newHandoffStats(cross)}
	if r.Grants == 0 {
		fail("no grants at all: nothing was checked")
	}
	if s.Totals.Grants != int64(r.Grants) {
		fail("the agents counted %d grants but %d were recorded", s.Totals.Grants, r.Grants)
	}
	r.Passed = len(r.Failures) == 0
	return nil
}

// legend explains the columns of the per-agent table.
const legend = `  GRANTS     leases the agent was granted (each with a new fencing token)
  WAITED     times it found its entity held and waited in line for it
  GAVE UP    waits that ran out of retries: it moved to another entity
  TAKEOVERS  grants of a lease that had expired: a crashed agent's
  LOST       leases lost while working (not renewed in time)
  REJECTED   writes the Guard refused: the lease was no longer current
  CRASHED    1 for an agent that walked away holding a lease, as a crash would`

func (s *summary) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "AGENT\tPROC\tGRANTS\tWAITED\tGAVE UP\tTAKEOVERS\tLOST\tREJECTED\tCRASHED\t")
	for _, a := range append(s.PerAgent, s.Totals) {
		proc := fmt.Sprint(a.Proc)
		if a.Agent == "total" {
			proc = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
			a.Agent, proc, a.Grants, a.Waits, a.GaveUp, a.Takeovers, a.Lost, a.Rejected, a.Crashed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n\nhandoff latency (holder done -> next holder has it):\n", legend)
	h := s.Handoff
	line := func(name string, st handoffStats) {
		fmt.Fprintf(w, "  %-14s %6d handoffs  p50 %7.2f ms  p99 %7.2f ms\n", name, st.Count, st.P50Ms, st.P99Ms)
	}
	line("in-process", h.InProcess)
	if s.Procs > 1 {
		line("cross-process", h.CrossProcess)
	}
	c := s.Check
	if c.Passed {
		fmt.Fprintf(w, "\ncheck: PASS (%d grants, %d guarded writes)\n", c.Grants, c.Writes)
		fmt.Fprintln(w, "  every counter equals its writes; tokens increase per entity;")
		fmt.Fprintln(w, "  no two holders overlapped; the agents' counts match the grants")
		return nil
	}
	fmt.Fprintf(w, "\ncheck: FAIL (%d grants, %d guarded writes):\n", c.Grants, c.Writes)
	for _, f := range c.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	return nil
}
