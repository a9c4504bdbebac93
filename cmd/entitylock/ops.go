package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s (%s)\t%s (%s)\n",
			printable(l.Entity), printable(l.SessionID), l.Token,
			relative(l.AcquiredAt, now), l.AcquiredAt.Format(time.RFC3339),
			relative(l.ExpiresAt, now), l.ExpiresAt.Format(time.RFC3339))
	}
	return tw.Flush()
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

func runLocks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("locks", "[--session ID] [--all] [--json]", "List live leases, by entity", stderr)
	db := dbFlag(fs)
	session := fs.String("session", "", "only the leases of session `ID`")
	all := fs.Bool("all", false, "include expired rows that were not reclaimed or purged yet")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	m, err := openExisting(ctx, *db, true)
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
	if *session != "" {
		kept := ls[:0]
		for _, l := range ls {
			if l.SessionID == *session {
				kept = append(kept, l)
			}
		}
		ls = kept
	}
	now := m.Now()
	if *asJSON {
		return writeJSON(stdout, toJSON(ls, now))
	}
	return printLeases(stdout, ls, now)
}

func runHolder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("holder", "[--json] ENTITY", "Print the live lease on ENTITY; exit 1 when it is free", stderr)
	db := dbFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"want exactly one ENTITY"}
	}
	m, err := openExisting(ctx, *db, true)
	if err != nil {
		return err
	}
	defer m.Close()
	l, err := m.Holder(ctx, fs.Arg(0))
	if errors.Is(err, lock.ErrNotHeld) {
		if *asJSON {
			writeJSON(stdout, nil)
		} else {
			fmt.Fprintf(stdout, "%s is free\n", printable(fs.Arg(0)))
		}
		return errFree
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, toJSON([]lock.Lease{l}, m.Now())[0])
	}
	return printLeases(stdout, []lock.Lease{l}, m.Now())
}

func runRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", "(--force ENTITY | --session ID) [--json]", "Remove leases and print what was removed", stderr)
	db := dbFlag(fs)
	force := fs.String("force", "", "remove the lease on `ENTITY`, whoever holds it")
	session := fs.String("session", "", "remove every lease, live or expired, of session `ID`")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if (*force == "") == (*session == "") || fs.NArg() > 0 {
		return usageError{"want exactly one of --force ENTITY or --session ID"}
	}
	m, err := openExisting(ctx, *db, false)
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
		return writeJSON(stdout, struct {
			Released int         `json:"released"`
			Leases   []leaseJSON `json:"leases,omitempty"`
		}{n, toJSON(gone, now)})
	}
	fmt.Fprintf(stdout, "released %d lease(s)\n", n)
	if len(gone) > 0 {
		return printLeases(stdout, gone, now)
	}
	return nil
}

func runPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("purge", "[--json]", "Delete expired lease rows and print how many", stderr)
	db := dbFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	m, err := openExisting(ctx, *db, false)
	if err != nil {
		return err
	}
	defer m.Close()
	n, err := m.PurgeExpired(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, map[string]int{"purged": n})
	}
	_, err = fmt.Fprintf(stdout, "purged %d expired or released row(s)\n", n)
	return err
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "[--yes] [--json] up|down|version", "Apply (up), revert (down) or show (version) the schema migrations", stderr)
	db := dbFlag(fs)
	yes := fs.Bool("yes", false, "confirm 'down', which drops the lock tables and every lease")
	asJSON := fs.Bool("json", false, "print JSON (version)")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"want one of up, down, version"}
	}
	if *db == "" {
		return usageError{"no database: pass --db or set ENTITYLOCK_DB"}
	}
	action := fs.Arg(0)
	switch action {
	case "up", "down", "version":
	default:
		return usageError{fmt.Sprintf("unknown migrate action %q: want up, down or version", action)}
	}
	if action == "down" && !*yes {
		return usageError{"'down' drops the lock tables and every lease in them: add --yes"}
	}
	if action == "up" && !isPostgres(*db) { // up may create the file; the others need one
		if err := touch(*db); err != nil {
			return err
		}
	}
	conn, err := openRaw(*db, action == "version")
	if err != nil {
		return err
	}
	defer conn.Close()
	switch action {
	case "up":
		err = schema.Migrate(ctx, conn)
	case "down":
		err = schema.MigrateDown(ctx, conn)
	}
	if err != nil {
		return err
	}
	v, dirty, err := schema.Version(ctx, conn)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"version": v, "dirty": dirty, "latest": schema.Latest()})
	}
	_, err = fmt.Fprintf(stdout, "schema version %d (dirty: %v); this binary knows up to %d\n", v, dirty, schema.Latest())
	return err
}
