package main

import (
	"bufio"
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// The report is one self-contained HTML file: inline CSS and SVG, no script,
// nothing fetched. Its markup is also well-formed XML, with class and data-
// attributes that name what each element stands for, so a test can check
// its structure without a browser.

const (
	reportLanes   = 8    // hottest entities drawn
	laneHeight    = 38   // px: hold bars, then the waiting strip
	barHeight     = 18   // px
	waitHeight    = 10   // px
	labelWidth    = 110  // px
	timelineWidth = 860  // px
	zoomSpan      = 0.25 // s: the zoomed timeline's window
)

// writeReport writes the report of s to path.
func writeReport(path string, s *summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	w := bufio.NewWriter(f)
	renderReport(w, s)
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("--report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

// lane is the grants of one entity, in order.
type lane struct {
	entity string
	grants []grantRec
}

// hotLanes returns the n entities with the most grants, hottest first.
func hotLanes(grants []grantRec, n int) []lane {
	var lanes []lane
	for i := 0; i < len(grants); {
		j := i
		for j < len(grants) && grants[j].entity == grants[i].entity {
			j++
		}
		lanes = append(lanes, lane{grants[i].entity, grants[i:j]})
		i = j
	}
	slices.SortStableFunc(lanes, func(a, b lane) int { return cmp.Compare(len(b.grants), len(a.grants)) })
	return lanes[:min(n, len(lanes))]
}

// agentColor gives agent i of n a colour of its own.
func agentColor(i, n int) string {
	return fmt.Sprintf("hsl(%d, 70%%, %d%%)", (i*360/max(n, 1)+200)%360, 42+8*(i%2))
}

func renderReport(w io.Writer, s *summary) {
	colors := map[string]string{}
	for i, a := range s.PerAgent {
		colors[a.Agent] = agentColor(i, len(s.PerAgent))
	}
	lanes := hotLanes(s.grants, reportLanes)
	t0 := s.start.UnixNano()
	t1 := s.end.UnixNano()
	for _, g := range s.grants {
		t1 = max(t1, g.exit)
	}

	esc := html.EscapeString
	verdict := "PASS"
	if !s.Check.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<title>entitylock demo: %d agents, %d entities, seed %d</title>
<style>
body { font: 14px/1.4 sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
th { border-bottom: 1px solid #999; } tr.total td { border-top: 1px solid #999; font-weight: bold; }
td.agent { text-align: left; } .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; }
.pass { color: #080; font-weight: bold; } .fail { color: #c00; font-weight: bold; }
svg text { font: 11px sans-serif; fill: #333; }
.note { color: #555; font-size: 13px; }
</style></head><body>
<h1>entitylock demo: %d agents in %s, %d entities, %s, TTL %s</h1>
<p>Database %s; crash rate %v; seed %d. Check: <span class="%s" id="verdict">%s</span>, %d grants, %d guarded writes.</p>
`, s.Agents, s.Entities, s.Seed, s.Agents, where(s.Procs), s.Entities, s.Duration, s.TTL,
		esc(s.Database), s.CrashRate, s.Seed, strings.ToLower(verdict), verdict, s.Check.Grants, s.Check.Writes)

	fmt.Fprintf(w, `<h2>Who held the %d hottest entities, and when</h2>
<p class="note">A lane per entity, a colour per agent: a bar is a lease held while the agent worked.
A hatched bar is a lease its agent crashed holding (marked &#x2715;): the entity is blocked until the lease expires.
A black diamond marks a takeover, the grant of that expired lease. The grey strip under each lane shows the agents waiting in line for it.</p>
`, len(lanes))
	renderTimeline(w, "run", lanes, colors, t0, t1)

	// The zoomed window starts a little before the first takeover, where
	// the waiters of a crashed agent's entity get it at last, or else in
	// the middle of the hottest lane.
	if len(lanes) > 0 && t1-t0 > int64(2*zoomSpan*float64(time.Second)) {
		hot := lanes[0].grants
		at := hot[len(hot)/2].enter
		first := int64(math.MaxInt64)
		for _, l := range lanes {
			for _, g := range l.grants {
				if g.reclaimed && g.enter < first {
					first = g.enter
				}
			}
		}
		if first != math.MaxInt64 {
			at = first
		}
		z0 := max(t0, at-int64(zoomSpan*float64(time.Second)/5))
		z1 := z0 + int64(zoomSpan*float64(time.Second))
		fmt.Fprintf(w, "<h2>The same lanes, %v from %v into the run</h2>\n",
			time.Duration(z1-z0), time.Duration(z0-t0).Round(time.Millisecond))
		renderTimeline(w, "zoom", lanes, colors, z0, z1)
	}

	fmt.Fprintln(w, `<h2>Handoff latency: holder done to next holder has it</h2>
<p class="note">Over the grants whose agent was already waiting. In-process: both agents in one process, woken by the Manager's waiting line. Cross-process: agents of two processes (demo --procs), woken by a watch on the database file (SQLite) or LISTEN/NOTIFY (PostgreSQL).</p>`)
	renderHistograms(w, s.Handoff)

	fmt.Fprintln(w, `<h2>Per agent</h2>`)
	fmt.Fprintln(w, `<table id="agents"><tr><th class="agent">agent</th><th>proc</th><th>grants</th><th>waited</th><th>gave up</th><th>takeovers</th><th>lost</th><th>rejected</th><th>crashed</th></tr>`)
	for _, a := range append(slices.Clone(s.PerAgent), s.Totals) {
		class, swatch, proc := "agent", "", fmt.Sprint(a.Proc)
		if a.Agent == "total" {
			class, proc = "total", ""
		} else {
			swatch = fmt.Sprintf(`<span class="swatch" style="background: %s"></span>`, colors[a.Agent])
		}
		fmt.Fprintf(w, `<tr class="%s" data-agent="%s"><td class="agent">%s%s</td><td>%s</td><td class="grants">%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>`+"\n",
			class, esc(a.Agent), swatch, esc(a.Agent), proc, a.Grants, a.Waits, a.GaveUp, a.Takeovers, a.Lost, a.Rejected, a.Crashed)
	}
	fmt.Fprintln(w, "</table>")
	fmt.Fprintf(w, "<pre class=\"note\">%s</pre>\n</body></html>\n", esc(legend))
}

// renderTimeline draws the lanes between times t0 and t1 (Unix ns).
func renderTimeline(w io.Writer, view string, lanes []lane, colors map[string]string, t0, t1 int64) {
	height := len(lanes)*laneHeight + 30
	width := labelWidth + timelineWidth + 30
	x := func(t int64) float64 {
		return labelWidth + float64(timelineWidth)*float64(t-t0)/float64(max(t1-t0, 1))
	}
	clip := func(t int64) int64 { return min(max(t, t0), t1) }
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" data-view="%s" width="%d" height="%d" viewBox="0 0 %d %d">
<defs><pattern id="hatch-%s" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><rect width="3" height="6" fill="#000" fill-opacity="0.35"/></pattern></defs>
`, view, width, height, width, height, view)
	for i, l := range lanes {
		y := float64(i * laneHeight)
		fmt.Fprintf(w, `<g class="lane" data-entity="%s" data-grants="%d">`+"\n", html.EscapeString(l.entity), len(l.grants))
		fmt.Fprintf(w, `<text x="4" y="%.1f">%s</text>`+"\n", y+barHeight-4, html.EscapeString(l.entity))
		fmt.Fprintf(w, `<rect x="%d" y="%.1f" width="%d" height="%d" fill="#f4f4f4"/>`+"\n", labelWidth, y, timelineWidth, barHeight)
		for j, g := range l.grants {
			// A bar ends when the agent left, or when the next holder came
			// in: a grant that did not write (its lease lost, or Ctrl-C)
			// may have outlived its lease.
			end := g.exit
			if j+1 < len(l.grants) {
				end = min(end, l.grants[j+1].enter)
			}
			a, b := clip(g.enter), clip(max(end, g.enter)) // a crash noted after its expiry: no width
			if b <= a && (g.enter > t1 || end < t0) {
				continue
			}
			class := "hold"
			if g.crashed {
				class = "hold crashed"
			}
			fmt.Fprintf(w, `<rect class="%s" data-agent="%s" data-token="%d" x="%.3f" y="%.1f" width="%.3f" height="%d" fill="%s"><title>%s, token %d, %v</title></rect>`+"\n",
				class, g.agent, g.token, x(a), y, x(b)-x(a), barHeight, colors[g.agent], g.agent, g.token, time.Duration(end-g.enter))
			if g.crashed {
				fmt.Fprintf(w, `<rect x="%.3f" y="%.1f" width="%.3f" height="%d" fill="url(#hatch-%s)" fill-opacity="0.6"/>`+"\n",
					x(a), y, x(b)-x(a), barHeight, view)
				if g.enter >= t0 {
					fmt.Fprintf(w, `<text class="crash" data-agent="%s" x="%.1f" y="%.1f" fill="#c00" style="fill: #c00; font-weight: bold">&#x2715;</text>`+"\n", g.agent, x(a)-4, y+barHeight-5)
				}
			}
			if g.reclaimed && g.enter >= t0 && g.enter <= t1 {
				cx := x(g.enter)
				fmt.Fprintf(w, `<path class="takeover" data-agent="%s" d="M %.1f %.1f l 5 6 l -5 6 l -5 -6 z" fill="#000"/>`+"\n", g.agent, cx, y+barHeight/2-6)
			}
		}
		renderWaits(w, l.grants, y+barHeight+2, x, clip)
		fmt.Fprintln(w, "</g>")
	}
	// Time axis.
	y := float64(len(lanes)*laneHeight) + 4
	span := time.Duration(t1 - t0)
	step := niceStep(span / 10)
	for t := time.Duration(0); t <= span; t += step {
		xt := x(t0 + int64(t))
		fmt.Fprintf(w, `<line x1="%.1f" y1="0" x2="%.1f" y2="%.1f" stroke="#000" stroke-opacity="0.12"/><text x="%.1f" y="%.1f" text-anchor="middle">%v</text>`+"\n",
			xt, xt, y, xt, y+14, t)
	}
	fmt.Fprintln(w, "</svg>")
}

// renderWaits draws how many agents waited for the lane's entity over time,
// from each grant's ask to its grant, as a step area under the bars.
func renderWaits(w io.Writer, grants []grantRec, y float64, x func(int64) float64, clip func(int64) int64) {
	type edge struct {
		t     int64
		delta int
	}
	var edges []edge
	for _, g := range grants {
		if g.enter > g.asked {
			edges = append(edges, edge{g.asked, +1}, edge{g.enter, -1})
		}
	}
	if len(edges) == 0 {
		return
	}
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.delta, b.delta)) })
	depth, most := 0, 0
	for _, e := range edges {
		depth += e.delta
		most = max(most, depth)
	}
	unit := float64(waitHeight) / float64(max(most, 1))
	base := y + waitHeight
	var d strings.Builder
	fmt.Fprintf(&d, "M %.2f %.2f", x(clip(edges[0].t)), base)
	depth = 0
	for _, e := range edges {
		xe := x(clip(e.t))
		fmt.Fprintf(&d, " L %.2f %.2f", xe, base-float64(depth)*unit)
		depth += e.delta
		fmt.Fprintf(&d, " L %.2f %.2f", xe, base-float64(depth)*unit)
	}
	fmt.Fprintf(w, `<path class="waits" data-most="%d" d="%s Z" fill="#888" fill-opacity="0.7"><title>up to %d agents waiting</title></path>`+"\n", most, d.String(), most)
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten.
func niceStep(d time.Duration) time.Duration {
	d = max(d, time.Microsecond)
	p := time.Duration(math.Pow(10, math.Floor(math.Log10(float64(d)))))
	for _, m := range []time.Duration{1, 2, 5, 10} {
		if m*p >= d {
			return m * p
		}
	}
	return 10 * p
}

// renderHistograms draws the in-process and cross-process handoff latencies
// side by side, on the same logarithmic bins (four per decade) and scale.
func renderHistograms(w io.Writer, h handoffs) {
	const perDecade = 4
	bin := func(d time.Duration) int {
		ms := max(float64(d)/float64(time.Millisecond), 1e-3)
		return int(math.Floor(math.Log10(ms) * perDecade))
	}
	lo, hi := math.MaxInt, math.MinInt
	for _, ds := range [][]time.Duration{h.InProcess.latencies, h.CrossProcess.latencies} {
		for _, d := range ds {
			lo, hi = min(lo, bin(d)), max(hi, bin(d))
		}
	}
	if lo > hi {
		fmt.Fprintln(w, `<p class="note">No handoffs: no agent was waiting when a holder finished.</p>`)
		return
	}
	lo, hi = int(math.Floor(float64(lo)/perDecade))*perDecade, hi+1
	counts := func(ds []time.Duration) []int {
		c := make([]int, hi-lo)
		for _, d := range ds {
			c[bin(d)-lo]++
		}
		return c
	}
	in, cross := counts(h.InProcess.latencies), counts(h.CrossProcess.latencies)
	most := max(slices.Max(in), slices.Max(cross), 1)
	for _, part := range []struct {
		name, class string
		st          handoffStats
		c           []int
	}{{"in-process", "in-process", h.InProcess, in}, {"cross-process", "cross-process", h.CrossProcess, cross}} {
		const width, height, left, bottom = 470, 190, 40, 34
		bw := float64(width-left-10) / float64(len(part.c))
		fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" class="histogram" data-kind="%s" data-count="%d" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n",
			part.class, part.st.Count, width, height, width, height)
		if part.st.Count > 0 {
			fmt.Fprintf(w, `<text x="%d" y="14">%s: %d handoffs, p50 %.2f ms, p99 %.2f ms</text>`+"\n", left, part.name, part.st.Count, part.st.P50Ms, part.st.P99Ms)
		} else {
			hint := ""
			if part.class == "cross-process" {
				hint = " (agents in one process; see demo --procs)"
			}
			fmt.Fprintf(w, `<text x="%d" y="14">%s: no handoffs%s</text>`+"\n", left, part.name, hint)
		}
		plot := float64(height - bottom - 24)
		for i, n := range part.c {
			bh := plot * float64(n) / float64(most)
			fmt.Fprintf(w, `<rect class="bin" data-count="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
				n, left+float64(i)*bw+1, float64(height-bottom)-bh, bw-2, bh, map[bool]string{true: "#3a7", false: "#37c"}[part.class == "in-process"])
		}
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, height-bottom, width-10, height-bottom)
		for i := 0; i <= len(part.c); i++ {
			if (lo+i)%perDecade == 0 {
				ms := math.Pow(10, float64(lo+i)/perDecade)
				fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", left+float64(i)*bw, height-bottom+14, msLabel(ms))
			}
		}
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">latency</text><text x="4" y="%d">%d</text></svg>`+"\n",
			left+(width-left)/2, height-4, height-bottom-int(plot), most)
	}
}

func msLabel(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%gµs", ms*1000)
	case ms < 1000:
		return fmt.Sprintf("%gms", ms)
	}
	return fmt.Sprintf("%gs", ms/1000)
}
