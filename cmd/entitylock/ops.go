package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
)

// leaseJSON is a lease as the listing commands print it with --json.
type leaseJSON struct {
	Entity     string    `json:"entity"`
	SessionID  string    `json:"session"`
	Token      int64     `json:"token"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Live       bool      `json:"live"`
	Reclaimed  bool      `json:"reclaimed"`
}

func toJSON(ls []lock.Lease, now time.Time) []leaseJSON {
	out := make([]leaseJSON, len(ls))
	for i, l := range ls {
		out[i] = leaseJSON{l.Entity, l.SessionID, l.Token, l.AcquiredAt, l.ExpiresAt, l.Live(now), l.Reclaimed}
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printLeases writes an aligned table of leases, times relative to now.
func printLeases(w io.Writer, ls []lock.Lease, now time.Time) error {
	if len(ls) == 0 {
		_, err := fmt.Fprintln(w, "no leases")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY\tSESSION\tTOKEN\tACQUIRED\tEXPIRES")
	for _, l := range ls {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n",
			printable(l.Entity), printable(l.SessionID), l.Token,
			relative(l.AcquiredAt, now), relative(l.ExpiresAt, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Absolute times are in --json; the table fits 80 columns.
	_, err := fmt.Fprintf(w, "(times relative to %s)\n", now.Format(time.RFC3339))
	return err
}

// printable quotes names that would break the table's alignment.
func printable(s string) string {
	for _, r := range s {
		if r < ' ' || r == '\t' || r == 0x7f {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}

// relative says how far t is from now: "12s ago", "in 1m30s", "expired 3s ago".
func relative(t, now time.Time) string {
	d := t.Sub(now).Round(100 * time.Millisecond)
	if d > 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

func locksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "locks [--session ID] [--all] [--json]",
		Short: "List live leases, by entity",
		Long: `List live leases, by entity, with their session, fencing token, and when
they were acquired and expire. Read-only: the database file is opened
read-only and nothing is created beside it.`,
		Example: `  entitylock locks --db app.db
  entitylock locks --db app.db --session worker-7 --json | jq -r '.[].entity'
  ENTITYLOCK_DB=postgres://app@db/app entitylock locks --all`,
		Args: noArgs,
	}
	db := dbFlag(cmd)
	session := cmd.Flags().String("session", "", "only the leases of session `ID`")
	all := cmd.Flags().Bool("all", false, "include expired rows that were not reclaimed or purged yet, and count the reclaimable rows")
	asJSON := jsonFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("session") && *session == "" {
			return usageError{"--session: want a session ID, not an empty string"}
		}
		ctx := cmd.Context()
		m, err := openExisting(ctx, *db, lock.ReadOnly)
		if err != nil {
			return err
		}
		defer m.Close()
		var ls []lock.Lease
		if *all {
			ls, err = m.AllLeases(ctx)
		} else {
			ls, err = m.Locks(ctx)
		}
		if err != nil {
			return err
		}
		ls = ofSession(ls, *session)
		now := m.Now()
		if *asJSON {
			return writeJSON(cmd.OutOrStdout(), toJSON(ls, now))
		}
		if err := printLeases(cmd.OutOrStdout(), ls, now); err != nil || !*all {
			return err
		}
		// Released rows are not listed: they hold only a token.
		c, err := m.RowCounts(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d reclaimable row(s): %d expired, %d released (the sweeper deletes them; so does `entitylock purge`)\n",
			c.Reclaimable(), c.Expired, c.Released)
		return err
	}
	return cmd
}

// ofSession keeps the leases of session id, or all of them if id is "".
func ofSession(ls []lock.Lease, id string) []lock.Lease {
	if id == "" {
		return ls
	}
	kept := ls[:0]
	for _, l := range ls {
		if l.SessionID == id {
			kept = append(kept, l)
		}
	}
	return kept
}

func jsonFlag(cmd *cobra.Command) *bool {
	return cmd.Flags().Bool("json", false, "print JSON")
}

func holderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "holder ENTITY [--json]",
		Short: "Print the live lease on ENTITY; exit 3 when it is free",
		Long: `Print the live lease on ENTITY. Exit status 0 when the entity is held, 3
when it is free, 1 when the database could not answer, 2 on a usage error,
so a script can tell "free" from "the database is down". Read-only.`,
		Example: `  entitylock holder --db app.db invoice::42
  if entitylock holder --db app.db invoice::42 >/dev/null; then echo held; fi
  entitylock holder invoice::42 --json   # null when free`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one ENTITY, got %d arguments", len(args))
			}
			return nil
		},
	}
	db := dbFlag(cmd)
	asJSON := jsonFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, entity, out := cmd.Context(), args[0], cmd.OutOrStdout()
		m, err := openExisting(ctx, *db, lock.ReadOnly)
		if err != nil {
			return err
		}
		defer m.Close()
		l, err := m.Holder(ctx, entity)
		if errors.Is(err, lock.ErrNotHeld) {
			if *asJSON {
				writeJSON(out, nil)
			} else {
				fmt.Fprintf(out, "%s is free\n", printable(entity))
			}
			return errNo
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(out, toJSON([]lock.Lease{l}, m.Now())[0])
		}
		return printLeases(out, []lock.Lease{l}, m.Now())
	}
	return cmd
}

func releaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release (--force ENTITY | --session ID) [--json]",
		Short: "Remove leases and print what was removed",
		Long: `Remove the lease on one entity whoever holds it (--force), or every lease,
live or expired, of one session (--session), and print what was removed.
The holder is not told: use it for a holder that is known to be dead.`,
		Example: `  entitylock release --db app.db --force invoice::42
  entitylock release --db app.db --session worker-7 --json`,
		Args: noArgs,
	}
	db := dbFlag(cmd)
	force := cmd.Flags().String("force", "", "remove the lease on `ENTITY`, whoever holds it")
	session := cmd.Flags().String("session", "", "remove every lease, live or expired, of session `ID`")
	asJSON := jsonFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f := cmd.Flags()
		if f.Changed("force") == f.Changed("session") {
			return usageError{"want exactly one of --force ENTITY or --session ID"}
		}
		if f.Changed("force") && *force == "" || f.Changed("session") && *session == "" {
			return usageError{"want a non-empty ENTITY or session ID"}
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		m, err := openExisting(ctx, *db, lock.ReadWrite)
		if err != nil {
			return err
		}
		defer m.Close()

		// What is about to go, for the report; the count comes from the removal.
		all, err := m.AllLeases(ctx)
		if err != nil {
			return err
		}
		var gone []lock.Lease
		for _, l := range all {
			if l.Entity == *force || (*session != "" && l.SessionID == *session) {
				gone = append(gone, l)
			}
		}
		var n int
		if *force != "" {
			ok, err := m.ForceRelease(ctx, *force)
			if err != nil {
				return err
			}
			if ok {
				n = 1
			}
		} else {
			s, err := m.Session(*session)
			if err != nil {
				return err
			}
			if n, err = s.ReleaseAll(ctx); err != nil {
				return err
			}
		}
		if n != len(gone) { // the table changed in between; report only the count
			gone = nil
		}
		now := m.Now()
		if *asJSON {
			return writeJSON(out, struct {
				Released int         `json:"released"`
				Leases   []leaseJSON `json:"leases,omitempty"`
			}{n, toJSON(gone, now)})
		}
		fmt.Fprintf(out, "released %d lease(s)\n", n)
		if len(gone) > 0 {
			return printLeases(out, gone, now)
		}
		return nil
	}
	return cmd
}

func purgeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "purge [--json]",
		Short:   "Delete expired and released lease rows",
		Example: `  entitylock purge --db app.db`,
		Args:    noArgs,
	}
	db := dbFlag(cmd)
	asJSON := jsonFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		m, err := openExisting(ctx, *db, lock.ReadWrite)
		if err != nil {
			return err
		}
		defer m.Close()
		n, err := m.PurgeExpired(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(out, map[string]int{"purged": n})
		}
		_, err = fmt.Fprintf(out, "purged %d expired or released row(s)\n", n)
		return err
	}
	return cmd
}
