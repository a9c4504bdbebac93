package schema_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/lock/locktest"
	"github.com/entitylock/entitylock/schema"
)

// pgObjects lists the relations, functions and version rows of the
// connection's current schema, to compare states.
func pgObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return testkit.QueryStrings(t, db, `
		SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace
		UNION ALL
		SELECT 'f ' || p.proname FROM pg_proc p
		WHERE p.pronamespace = current_schema()::regnamespace
		ORDER BY 1`)
}

func TestPostgresMigrateUpDownAndConcurrentStart(t *testing.T) {
	b := locktest.Postgres(t)
	db := testkit.DB(t, b.NewDSN(t))
	empty := pgObjects(t, db)

	// Eight Migrate calls at once, each on a connection of its own.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = schema.Postgres.Migrate(t.Context(), db) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	v, dirty, err := schema.Postgres.Version(t.Context(), db)
	if err != nil || v != schema.Latest() || dirty {
		t.Fatalf("Version = %d, %v, %v; want %d, clean", v, dirty, err, schema.Latest())
	}
	migrated := pgObjects(t, db)
	if err := schema.Postgres.Migrate(t.Context(), db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if diff := cmp.Diff(migrated, pgObjects(t, db)); diff != "" {
		t.Errorf("a second Migrate changed the schema (-before +after):\n%s", diff)
	}
	if err := schema.Postgres.MigrateDown(t.Context(), db); err != nil {
		t.Fatalf("MigrateDown: %v", err)
	}
	// What is left is golang-migrate's version table, now empty.
	want := append(empty, "r "+schema.MigrationsTable, "i "+schema.MigrationsTable+"_pkey")
	got := pgObjects(t, db)
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("after MigrateDown (-want +got):\n%s", diff)
	}
	if v, _, err := schema.Postgres.Version(t.Context(), db); err != nil || v != 0 {
		t.Errorf("Version after down = %d, %v; want 0", v, err)
	}
}

// A connection killed at any moment of the first migration leaves the
// schema either untouched or fully migrated, never marked dirty, and the
// next Migrate succeeds.
func TestPostgresMigrationSurvivesKilledConnection(t *testing.T) {
	b := locktest.Postgres(t)
	const tries = 40
	outcomes := map[string]int{}
	for try := range tries {
		dsn := b.NewDSN(t)
		app := fmt.Sprintf("entitylock_victim_%d", try)
		// Pools of this try only, closed before the next: forty tries must
		// not hold eighty pools open until the test ends.
		victim, err := sql.Open("pgx", testkit.WithParam(t, dsn, "application_name", app))
		if err != nil {
			t.Fatal(err)
		}
		killer, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		closePools := func() { victim.Close(); killer.Close() }
		if err := victim.PingContext(t.Context()); err != nil {
			closePools()
			t.Fatal(err)
		}
		delay := time.Duration(try%17) * time.Millisecond // 0–16 ms into the migration
		done := make(chan error, 1)
		go func() { done <- schema.Postgres.Migrate(t.Context(), victim) }()
		time.Sleep(delay)
		if _, err := killer.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
			t.Fatal(err)
		}
		migErr := <-done
		v, dirty, err := schema.Postgres.Version(t.Context(), killer)
		if err != nil {
			closePools()
			t.Fatalf("try %d: Version: %v", try, err)
		}
		if dirty {
			t.Errorf("try %d (kill after %v): schema left dirty at version %d (Migrate: %v)", try, delay, v, migErr)
		} else {
			outcomes[fmt.Sprintf("version %d", v)]++
			if err := schema.Postgres.Migrate(t.Context(), killer); err != nil {
				t.Errorf("try %d: Migrate after the kill: %v", try, err)
			}
		}
		closePools()
	}
	t.Logf("after %d kills: %v", tries, outcomes)
}

// A dirty version row (left by another tool, or an older release) stops
// Migrate with ErrDirty and changes nothing; Force records the version the
// operator names, and refuses versions this build does not know.
func TestForce(t *testing.T) {
	engines := []struct {
		name string
		b    func(t *testing.T) locktest.Backend
	}{
		{"sqlite", func(*testing.T) locktest.Backend { return locktest.SQLite() }},
		{"postgres", func(t *testing.T) locktest.Backend { return locktest.Postgres(t) }},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			b := e.b(t)
			db := testkit.DB(t, b.NewDSN(t))
			s, err := lock.SchemaOf(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(t.Context(), db); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE ` + schema.MigrationsTable + ` SET dirty = true`); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(t.Context(), db); !errors.Is(err, schema.ErrDirty) {
				t.Fatalf("Migrate on a dirty schema: %v; want ErrDirty", err)
			}
			for _, bad := range []int{-2, int(schema.Latest()) + 1, 1 << 40} {
				if err := s.Force(t.Context(), db, bad); !errors.Is(err, schema.ErrUnknownVersion) {
					t.Errorf("Force(%d) = %v; want ErrUnknownVersion", bad, err)
				}
				if _, dirty, _ := s.Version(t.Context(), db); !dirty {
					t.Errorf("Force(%d) changed the version row", bad)
				}
			}
			if err := s.Force(t.Context(), db, int(schema.Latest())); err != nil {
				t.Fatalf("Force(latest): %v", err)
			}
			v, dirty, err := s.Version(t.Context(), db)
			if err != nil || dirty || v != schema.Latest() {
				t.Fatalf("after Force: %d, %v, %v; want %d clean", v, dirty, err, schema.Latest())
			}
			if err := s.Migrate(t.Context(), db); err != nil {
				t.Errorf("Migrate after Force: %v", err)
			}
		})
	}
}

// A search_path that names no existing schema is a clear error that names
// it, and creates nothing.
func TestPostgresMissingSchema(t *testing.T) {
	b := locktest.Postgres(t)
	dsn := testkit.WithParam(t, b.NewDSN(t), "search_path", "entitylock_no_such_schema")
	db := testkit.DB(t, dsn)
	err := schema.Postgres.Migrate(t.Context(), db)
	if !errors.Is(err, schema.ErrNoSchema) || !strings.Contains(err.Error(), "entitylock_no_such_schema") {
		t.Fatalf("Migrate: %v; want ErrNoSchema naming the search_path", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_namespace WHERE nspname = 'entitylock_no_such_schema'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema count %d, %v; want 0", n, err)
	}
}
