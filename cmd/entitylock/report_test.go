package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// reportDoc is what the test reads back from a report.
type reportDoc struct {
	timelines map[string][]reportLane // by data-view
	histos    map[string]int          // data-kind: data-count
	binSums   map[string]int          // data-kind: sum of its bins
	rows      map[string]int64        // data-agent: grants cell
	external  []string                // attributes that fetch something
	scripts   int
}

type reportLane struct {
	entity string
	grants int
	bars   [][2]float64 // x, x+width
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// parseReport reads the report as XML, which it also is.
func parseReport(t *testing.T, html []byte) *reportDoc {
	t.Helper()
	d := &reportDoc{timelines: map[string][]reportLane{}, histos: map[string]int{}, binSums: map[string]int{}, rows: map[string]int64{}}
	dec := xml.NewDecoder(bytes.NewReader(html))
	dec.Strict = true
	var view, kind, rowAgent string
	var lane *reportLane
	var inGrantsCell bool
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the report is not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			for _, a := range e.Attr {
				if (a.Name.Local == "src" || a.Name.Local == "href") && a.Value != "" {
					d.external = append(d.external, a.Value)
				}
			}
			class := attr(e, "class")
			switch {
			case e.Name.Local == "script" || e.Name.Local == "link":
				d.scripts++
			case class == "timeline":
				view = attr(e, "data-view")
			case class == "lane":
				n, _ := strconv.Atoi(attr(e, "data-grants"))
				d.timelines[view] = append(d.timelines[view], reportLane{entity: attr(e, "data-entity"), grants: n})
				lane = &d.timelines[view][len(d.timelines[view])-1]
			case strings.HasPrefix(class, "hold"):
				x, err1 := strconv.ParseFloat(attr(e, "x"), 64)
				w, err2 := strconv.ParseFloat(attr(e, "width"), 64)
				if err1 != nil || err2 != nil || w < 0 {
					t.Fatalf("bad bar %v", e.Attr)
				}
				lane.bars = append(lane.bars, [2]float64{x, x + w})
			case class == "histogram":
				kind = attr(e, "data-kind")
				d.histos[kind], _ = strconv.Atoi(attr(e, "data-count"))
			case class == "bin":
				n, _ := strconv.Atoi(attr(e, "data-count"))
				d.binSums[kind] += n
			case e.Name.Local == "tr" && attr(e, "data-agent") != "":
				rowAgent = attr(e, "data-agent")
			case class == "grants":
				inGrantsCell = true
			}
		case xml.CharData:
			if inGrantsCell {
				d.rows[rowAgent], _ = strconv.ParseInt(strings.TrimSpace(string(e)), 10, 64)
				inGrantsCell = false
			}
		}
	}
	return d
}

// check compares the report with the run's summary; it returns what is
// wrong, or "".
func (d *reportDoc) check(s summary) string {
	var bad []string
	if d.scripts > 0 || len(d.external) > 0 {
		bad = append(bad, fmt.Sprintf("not self-contained: %d scripts or links, references %v", d.scripts, d.external))
	}
	run := d.timelines["run"]
	if want := min(reportLanes, s.Entities); len(run) != want {
		bad = append(bad, fmt.Sprintf("%d lanes, want %d", len(run), want))
	}
	for view, lanes := range d.timelines {
		for i, l := range lanes {
			if view == "run" && len(l.bars) != l.grants {
				bad = append(bad, fmt.Sprintf("lane %s: %d bars for %d grants", l.entity, len(l.bars), l.grants))
			}
			if i > 0 && l.grants > lanes[i-1].grants {
				bad = append(bad, fmt.Sprintf("lane %s (%d grants) after a cooler one", l.entity, l.grants))
			}
			bars := slices.Clone(l.bars)
			slices.SortFunc(bars, func(a, b [2]float64) int {
				return int(a[0]*1000) - int(b[0]*1000)
			})
			for j := 1; j < len(bars); j++ {
				if bars[j][0] < bars[j-1][1]-0.002 { // 3 decimals in the file
					bad = append(bad, fmt.Sprintf("%s lane %s: bar at %.3f starts before the previous ends at %.3f", view, l.entity, bars[j][0], bars[j-1][1]))
				}
			}
		}
	}
	if _, ok := d.timelines["zoom"]; !ok {
		bad = append(bad, "no zoomed timeline")
	}
	for kind, want := range map[string]int{"in-process": s.Handoff.InProcess.Count, "cross-process": s.Handoff.CrossProcess.Count} {
		if d.histos[kind] != want || d.binSums[kind] != want {
			bad = append(bad, fmt.Sprintf("%s histogram: %d handoffs in %d bins, want %d", kind, d.histos[kind], d.binSums[kind], want))
		}
	}
	if s.Procs > 1 && s.Handoff.CrossProcess.Count == 0 {
		bad = append(bad, "no cross-process handoff in a run of several processes")
	}
	var sum int64
	for _, a := range s.PerAgent {
		if d.rows[a.Agent] != a.Grants {
			bad = append(bad, fmt.Sprintf("%s: %d grants in the table, %d in the summary", a.Agent, d.rows[a.Agent], a.Grants))
		}
		sum += d.rows[a.Agent]
	}
	if d.rows["total"] != s.Totals.Grants || sum != s.Totals.Grants {
		bad = append(bad, fmt.Sprintf("total %d (rows add to %d), summary %d", d.rows["total"], sum, s.Totals.Grants))
	}
	return strings.Join(bad, "\n")
}
