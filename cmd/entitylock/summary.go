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

// summary is what the demo prints at the end, as a table or JSON.
type summary struct {
	Database  string        `json:"database"`
	Agents    int           `json:"agents"`
	Procs     int           `json:"procs"`
	Entities  int           `json:"entities"`
	Duration  string        `json:"duration"`
	TTL       string        `json:"ttl"`
	CrashRate float64       `json:"crash_rate"`
	Seed      uint64        `json:"seed"`
	PerAgent  []agentCounts `json:"per_agent"`
	Totals    agentCounts   `json:"totals"`
	Handoff   handoff       `json:"handoff"`
	Check     checkResult   `json:"check"`
}

// handoff is the time from a holder finishing its work to the next waiter
// holding the entity, over the grants whose agent was already waiting.
type handoff struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
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
}

func summarize(ctx context.Context, db *sql.DB, c *demoConfig) (*summary, error) {
	s := &summary{
		Database: display(c.db), Agents: c.agents, Procs: c.procs, Entities: c.entities,
		Duration: c.duration.String(), TTL: c.ttl.String(), CrashRate: c.crashRate, Seed: c.seed,
		Totals: agentCounts{Agent: "total"},
	}
	rows, err := db.QueryContext(ctx, `SELECT agent, proc, grants, waits, gave_up, takeovers, lost, rejected, crashed
		FROM demo_agents ORDER BY agent`)
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
	if err := s.check(ctx, db); err != nil {
		return nil, err
	}
	return s, nil
}

// check verifies, independently of the lock code:
//   - no lost update: each entity's counter equals the grants that wrote it;
//   - fencing: tokens strictly increase per entity in grant order;
//   - mutual exclusion: no two grants of an entity that wrote, or crashed
//     holding it, overlapped in time (a crashed grant lasts until its expiry).
func (s *summary) check(ctx context.Context, db *sql.DB) error {
	r := &s.Check
	fail := func(format string, args ...any) {
		if len(r.Failures) < 20 {
			r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
		}
	}

	rows, err := db.QueryContext(ctx, `SELECT e.entity, e.updates,
		(SELECT count(*) FROM demo_grants g WHERE g.entity = e.entity AND g.wrote)
		FROM demo_entities e ORDER BY e.entity`)
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

	rows, err = db.QueryContext(ctx, `SELECT entity, token, agent, asked_ns, enter_ns, exit_ns, wrote, crashed
		FROM demo_grants ORDER BY entity, enter_ns, token`)
	if err != nil {
		return err
	}
	var grants []grantRec
	for rows.Next() {
		var g grantRec
		if err := rows.Scan(&g.entity, &g.token, &g.agent, &g.asked, &g.enter, &g.exit, &g.wrote, &g.crashed); err != nil {
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

	var handoffs []time.Duration
	var prev, prevHeld *grantRec // previous grant, previous that wrote or crashed
	for i := range grants {
		g := &grants[i]
		if prev != nil && prev.entity != g.entity {
			prev, prevHeld = nil, nil
		}
		if prev != nil {
			if g.token <= prev.token {
				fail("%s: token %d (%s) after token %d (%s): not increasing", g.entity, g.token, g.agent, prev.token, prev.agent)
			}
			if !prev.crashed && g.asked < prev.exit {
				handoffs = append(handoffs, time.Duration(g.enter-prev.exit))
			}
		}
		if (g.wrote || g.crashed) && prevHeld != nil && g.enter < prevHeld.exit {
			fail("%s: %s (token %d) entered %v before %s (token %d) left",
				g.entity, g.agent, g.token, time.Duration(prevHeld.exit-g.enter), prevHeld.agent, prevHeld.token)
		}
		prev = g
		if g.wrote || g.crashed {
			prevHeld = g
		}
	}
	if len(handoffs) > 0 {
		slices.Sort(handoffs)
		q := func(p float64) float64 {
			return float64(handoffs[int(p*float64(len(handoffs)-1))].Microseconds()) / 1000
		}
		s.Handoff = handoff{Count: len(handoffs), P50Ms: q(0.50), P99Ms: q(0.99)}
	}
	if r.Grants == 0 {
		fail("no grants at all: nothing was checked")
	}
	r.Passed = len(r.Failures) == 0
	return nil
}

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
	fmt.Fprintf(w, "\nhandoff latency (holder done -> waiter holds), %d handoffs: p50 %.2f ms, p99 %.2f ms\n",
		s.Handoff.Count, s.Handoff.P50Ms, s.Handoff.P99Ms)
	c := s.Check
	if c.Passed {
		fmt.Fprintf(w, "check: PASS — %d grants, %d guarded writes: every counter equals its writes, tokens increase per entity, no two holders overlapped\n",
			c.Grants, c.Writes)
		return nil
	}
	fmt.Fprintf(w, "check: FAIL — %d grants, %d guarded writes:\n", c.Grants, c.Writes)
	for _, f := range c.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	return nil
}
