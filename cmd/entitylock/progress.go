package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"time"
)

// progress reports the demo's running totals on stderr: one line rewritten
// in place on a terminal, a line a second otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	total time.Duration
	start time.Time
}

func newProgress(w io.Writer, total time.Duration) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) run(ctx context.Context, db *sql.DB) {
	every := time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.line(ctx, db)
		}
	}
}

// finish prints the final totals and ends the in-place line.
func (p *progress) finish(db *sql.DB) {
	p.line(context.Background(), db)
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) line(ctx context.Context, db *sql.DB) {
	var grants, waits, gaveUp, takeovers int64
	err := db.QueryRowContext(ctx, `SELECT coalesce(sum(grants), 0), coalesce(sum(waits), 0),
		coalesce(sum(gave_up), 0), coalesce(sum(takeovers), 0) FROM demo_agents`).
		Scan(&grants, &waits, &gaveUp, &takeovers)
	if err != nil {
		return // the next tick will do; progress is best effort
	}
	elapsed := min(time.Since(p.start), p.total).Round(100 * time.Millisecond)
	text := fmt.Sprintf("%5.1fs/%v  grants %d  waited %d  gave up %d  takeovers %d",
		elapsed.Seconds(), p.total, grants, waits, gaveUp, takeovers)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", text)
	} else {
		fmt.Fprintln(p.w, text)
	}
}
