package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
)

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate up|down|version|force VERSION",
		Short: "Apply, revert, show or force the schema version",
		Long: `Apply (up), revert (down) or show (version) the lock tables' schema
migrations, or record a version after a failed migration was repaired by
hand (force), as golang-migrate's "force" does.

The version is kept in the table ` + schema.MigrationsTable + `, apart from
any golang-migrate table of the application.`,
		Example: `  entitylock migrate up --db app.db
  entitylock migrate version --db app.db --json
  entitylock migrate down --db app.db --yes
  entitylock migrate force 1 --db app.db`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{"want up, down, version or force VERSION"}
		},
	}
	up := &cobra.Command{
		Use:     "up",
		Short:   "Apply pending migrations (creates a missing SQLite file)",
		Example: `  entitylock migrate up --db app.db`,
		Args:    noArgs,
	}
	down := &cobra.Command{
		Use:     "down --yes",
		Short:   "Revert every migration: drop the lock tables and leases",
		Example: `  entitylock migrate down --db app.db --yes`,
		Args:    noArgs,
	}
	yes := down.Flags().Bool("yes", false, "confirm: drop the lock tables and every lease in them")
	version := &cobra.Command{
		Use:     "version [--json]",
		Short:   "Print the schema version and whether it is dirty",
		Example: `  entitylock migrate version --db app.db`,
		Args:    noArgs,
	}
	force := &cobra.Command{
		Use:   "force VERSION",
		Short: "Record VERSION as the schema version, clean",
		Long: `Record VERSION as the schema version and clear the dirty flag, without
running any migration. Use it after a migration failed half-way (the
version is then marked dirty and every command refuses the database) and
you repaired the schema by hand: force the version the schema now matches,
then run 'migrate up'. 0 means no migration applied. This is
golang-migrate's "migrate force".`,
		Example: `  entitylock migrate version --db app.db   # schema version 1 (dirty: true)
  entitylock migrate force 1 --db app.db    # the tables match version 1`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one VERSION, got %d arguments", len(args))
			}
			v, err := strconv.Atoi(args[0])
			if err != nil || v < -1 || v > int(schema.Latest()) {
				return usagef("VERSION %q: want 0 for none, or a version from 1 to %d", args[0], schema.Latest())
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{up, down, version, force} {
		db := dbFlag(c)
		asJSON := jsonFlag(c)
		c.RunE = func(c *cobra.Command, args []string) error {
			access := map[*cobra.Command]lock.Access{up: lock.Create, down: lock.ReadWrite, version: lock.ReadOnly, force: lock.ReadWrite}[c]
			if c == down && !*yes {
				return usageError{"'down' drops the lock tables and every lease in them: add --yes"}
			}
			ctx := c.Context()
			conn, err := openRaw(ctx, *db, access)
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := lock.SchemaOf(conn)
			if err != nil {
				return err
			}
			switch c {
			case up:
				err = s.Migrate(ctx, conn)
			case down:
				err = s.MigrateDown(ctx, conn)
			case force:
				v, _ := strconv.Atoi(args[0])
				err = s.Force(ctx, conn, v)
			}
			if err != nil {
				return explain(*db, err)
			}
			return printVersion(ctx, c, s, conn, *asJSON)
		}
	}
	cmd.AddCommand(up, down, version, force)
	return cmd
}

func printVersion(ctx context.Context, c *cobra.Command, s *schema.Migrations, conn *sql.DB, asJSON bool) error {
	v, dirty, err := s.Version(ctx, conn)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(c.OutOrStdout(), map[string]any{"version": v, "dirty": dirty, "latest": schema.Latest()})
	}
	_, err = fmt.Fprintf(c.OutOrStdout(), "schema version %d (dirty: %v); this binary knows up to %d\n", v, dirty, schema.Latest())
	return err
}
