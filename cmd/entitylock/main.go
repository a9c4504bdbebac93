// Command entitylock shows entitylock at work and lets operators inspect and
// fix leases in a database.
//
//	entitylock demo                 simulate agents sharing one database
//	entitylock locks                list live leases
//	entitylock holder ENTITY        show who holds ENTITY (exit 1 when free)
//	entitylock release --force E    remove the lease on E, whoever holds it
//	entitylock release --session S  remove every lease of session S
//	entitylock purge                delete expired rows
//	entitylock migrate up|down|version
//
// Every command but demo takes --db, defaulting to $ENTITYLOCK_DB. Exit
// status: 0 on success, 1 when the command failed (or holder found the
// entity free), 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// usageError marks an error in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errFree is holder's "nobody holds it": exit status 1, nothing more to say.
var errFree = errors.New("free")

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"demo", "[flags]", "simulate agents that lock and update shared entities, then check the result", runDemo},
	{"locks", "[--session ID] [--all] [--json]", "list live leases (--all: expired rows too)", runLocks},
	{"holder", "[--json] ENTITY", "print the live lease on ENTITY; exit 1 when it is free", runHolder},
	{"release", "(--force ENTITY | --session ID) [--json]", "remove leases and print what was removed", runRelease},
	{"purge", "[--json]", "delete expired rows and print how many", runPurge},
	{"migrate", "[--yes] [--json] up|down|version", "apply, revert or show the schema migrations", runMigrate},
	{"demo-worker", "", "", runDemoWorker}, // internal: agents of demo --procs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ue usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "entitylock %s: %v\n", name, err)
			fmt.Fprintf(stderr, "usage: entitylock %s %s (see entitylock %s --help)\n", c.name, c.args, c.name)
			return 2
		case errors.Is(err, errFree):
			return 1
		default:
			fmt.Fprintf(stderr, "entitylock %s: %s\n", name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "entitylock: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "entitylock: advisory, time-bounded locks on named entities in SQLite.")
	fmt.Fprintln(w, "\nUsage: entitylock COMMAND [flags]\n\nCommands:")
	for _, c := range commands {
		if c.summary != "" {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nOperator commands take --db PATH (default $ENTITYLOCK_DB).")
	fmt.Fprintln(w, "Run 'entitylock COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting, with
// a usage text naming the command.
func newFlags(name, args, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: entitylock %s %s\n\n%s.\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning flag errors into usage errors. Help goes to
// stdout and ends the command with status 0.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	fs.SetOutput(io.Discard) // parse errors are reported once, by run
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// oneLine flattens an error message that spans lines (pgx lists each
// address it tried on a line of its own), so a database error is one line.
func oneLine(err error) string {
	return strings.NewReplacer(":\n\t", ": ", "\n\t", "; ", "\n", "; ").Replace(err.Error())
}
