package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports the demo's running totals on stderr: one line rewritten
// in place on a terminal, a line a second otherwise (never the same line
// twice).
type progress struct {
	w      io.Writer
	tty    bool
	total  time.Duration
	start  time.Time
	tables appTables

	mu   sync.Mutex
	last string // the last line written
	open bool   // the terminal's cursor is at the end of an in-place line
}

func newProgress(w io.Writer, total time.Duration, tables appTables) *progress {
	return &progress{w: w, total: total, start: time.Now(), tables: tables, tty: isTerminal(w)}
}

// isTerminal tells whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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
			p.line(ctx, db, false)
		}
	}
}

// finish prints the final totals and ends the in-place line.
func (p *progress) finish(db *sql.DB) {
	p.line(context.Background(), db, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// note prints a line of its own between progress lines.
func (p *progress) note(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
	fmt.Fprintln(p.w, text)
}

func (p *progress) line(ctx context.Context, db *sql.DB, final bool) {
	var grants, waits, gaveUp, takeovers int64
	err := db.QueryRowContext(ctx, p.tables.sql(`SELECT coalesce(sum(grants), 0), coalesce(sum(waits), 0),
		coalesce(sum(gave_up), 0), coalesce(sum(takeovers), 0) FROM {agents}`)).
		Scan(&grants, &waits, &gaveUp, &takeovers)
	if err != nil {
		return // the next tick will do; progress is best effort
	}
	at := fmt.Sprintf("%5.1fs/%v", min(time.Since(p.start), p.total).Seconds(), p.total)
	if final {
		at = fmt.Sprintf("done in %v:", time.Since(p.start).Round(100*time.Millisecond))
	}
	text := fmt.Sprintf("%s  grants %d  waited %d  gave up %d  takeovers %d", at, grants, waits, gaveUp, takeovers)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", text)
		p.open = true
	case text != p.last:
		fmt.Fprintln(p.w, text)
	}
	p.last = text
}
