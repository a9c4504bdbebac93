package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
)

func watchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch [--interval 1s]",
		Short: "Show the live leases, redrawn in place every second",
		Long: `Show the live leases (entity, session, fencing token, how long held, time
left), redrawn in place every --interval on a terminal, until Ctrl-C. When
the output is not a terminal, print one snapshot and exit. Read-only, like
locks.

Waiters are not shown: a waiting line lives in the memory of the process
whose sessions wait, not in the database.`,
		Example: `  entitylock watch --db app.db
  entitylock watch --db app.db --session worker-7
  entitylock watch --db app.db | head   # one snapshot`,
		Args: noArgs,
	}
	db := dbFlag(cmd)
	interval := cmd.Flags().Duration("interval", time.Second, "time between redraws")
	session := cmd.Flags().String("session", "", "only the leases of session `ID`")
	limit := cmd.Flags().Int("limit", 30, "show at most this many leases")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("session") && *session == "" {
			return usageError{"--session: want a session ID, not an empty string"}
		}
		if *interval < 100*time.Millisecond {
			return usagef("--interval %v: want at least 100ms", *interval)
		}
		if *limit < 1 {
			return usagef("--limit %d: want at least 1", *limit)
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		v := &watchView{dsn: *db, session: *session, limit: *limit}
		if !isTerminal(out) {
			return v.draw(ctx, out)
		}
		if err := v.draw(ctx, io.Discard); err != nil {
			return err // before the screen is cleared
		}
		fmt.Fprint(out, "\033[?25l") // hide the cursor while redrawing
		defer fmt.Fprint(out, "\033[?25h\n")
		t := time.NewTicker(*interval)
		defer t.Stop()
		for {
			fmt.Fprint(out, "\033[H\033[2J")
			if err := v.draw(ctx, out); err != nil {
				if ctx.Err() != nil {
					return nil // Ctrl-C during a query: a clean end
				}
				return err
			}
			fmt.Fprintf(out, "\nevery %v; Ctrl-C to quit", *interval)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
	return cmd
}

type watchView struct {
	dsn     string
	session string
	limit   int
}

// draw writes one snapshot of the live leases. It opens the database for
// each snapshot: an SQLite file that nobody writes is then read immutable,
// which is safe for a moment but not for as long as a watch lasts, and a
// connection kept open would keep a writer from removing its -wal and
// -shm files when it closes.
func (v *watchView) draw(ctx context.Context, w io.Writer) error {
	m, err := openExisting(ctx, v.dsn, lock.ReadOnly)
	if err != nil {
		return err
	}
	defer m.Close()
	ls, err := m.Locks(ctx)
	if err != nil {
		return err
	}
	ls = ofSession(ls, v.session)
	now := m.Now()
	fmt.Fprintf(w, "%s  %s  %d live lease(s)\n\n", now.Local().Format("15:04:05"), display(v.dsn), len(ls))
	if len(ls) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tSESSION\tTOKEN\tHELD FOR\tTIME LEFT\t")
	for i, l := range ls {
		if i == v.limit {
			fmt.Fprintf(tw, "… and %d more\t\t\t\t\t\n", len(ls)-v.limit)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\t\n", printable(l.Entity), printable(l.SessionID), l.Token,
			now.Sub(l.AcquiredAt).Round(100*time.Millisecond), timeLeft(l, now))
	}
	return tw.Flush()
}

func timeLeft(l lock.Lease, now time.Time) time.Duration {
	return max(l.ExpiresAt.Sub(now), 0).Round(100 * time.Millisecond)
}
