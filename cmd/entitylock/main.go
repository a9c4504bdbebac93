// Command entitylock shows entitylock at work and lets operators inspect and
// fix leases in a database. Run 'entitylock --help' for its commands, and
// see exitCodeHelp for what its exit status means.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses: see exitCodeHelp.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNo          = 3
	exitInterrupted = 130
)

// exitCodeHelp is the exit status table of the root command's help; the
// README repeats it.
const exitCodeHelp = `Exit status:
  0    success (holder: the entity is held)
  1    failure: the database is unreachable or not one, a demo check failed
  2    usage error: an unknown command or flag, a bad or missing value
  3    "no": holder found the entity free
  130  interrupted by Ctrl-C or SIGTERM (demo prints its summary first)`

// usageError marks an error in the command line: exit status 2, with the
// command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errNo is a "no" answer, such as holder's "nobody holds it": exit status 3,
// nothing more to say.
var errNo = errors.New("no")

// errInterrupted ends a command that stopped because of a signal, after it
// said what it had to: exit status 130.
var errInterrupted = errors.New("interrupted")

func main() {
	ctx, stop := interruptContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n\n%s", cmd.CommandPath(), ue.msg, cmd.UsageString())
		return exitUsage
	case errors.Is(err, errNo):
		return exitNo
	case errors.Is(err, errInterrupted) || context.Cause(ctx) == errSignal:
		if !errors.Is(err, errInterrupted) {
			fmt.Fprintf(stderr, "%s: interrupted\n", cmd.CommandPath())
		}
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), oneLine(err))
		return exitFailure
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "entitylock",
		Short: "Advisory, time-bounded locks on named entities in SQLite or PostgreSQL",
		Long: `entitylock shows the entitylock library at work (demo) and lets operators
inspect and fix leases in a database (locks, holder, watch, release, purge,
migrate).

Operator commands take --db: an SQLite database file, or a PostgreSQL URL
(postgres://…) or key=value DSN; it defaults to $ENTITYLOCK_DB.

` + exitCodeHelp,
		Example: `  entitylock demo
  entitylock demo --agents 16 --procs 4 --report run.html
  entitylock locks --db app.db
  entitylock holder --db app.db invoice::42 && echo held`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{"no command given"}
		},
	}
	root.SetVersionTemplate("entitylock {{.Version}}\n")
	// Flag descriptions wrap to fit 80 columns.
	cobra.AddTemplateFunc("wrapped", func(f *pflag.FlagSet) string { return f.FlagUsagesWrapped(80) })
	root.SetUsageTemplate(strings.NewReplacer(".LocalFlags.FlagUsages", "wrapped .LocalFlags",
		".InheritedFlags.FlagUsages", "wrapped .InheritedFlags").Replace(root.UsageTemplate()))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.AddCommand(demoCommand(), locksCommand(), holderCommand(), watchCommand(),
		releaseCommand(), purgeCommand(), migrateCommand(), demoWorkerCommand())
	return root
}

// noArgs refuses positional arguments; on a command with subcommands the
// argument is an unknown subcommand.
func noArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return nil
	case cmd.HasSubCommands():
		return usagef("unknown command %q", args[0])
	}
	return usagef("unexpected argument %q", args[0])
}

// oneLine flattens an error message that spans lines (pgx lists each
// address it tried on a line of its own), so a database error is one line.
func oneLine(err error) string {
	return strings.NewReplacer(":\n\t", ": ", "\n\t", "; ", "\n", "; ").Replace(err.Error())
}
