package schema_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/entitylock/entitylock/lock/locktest"
	"github.com/entitylock/entitylock/schema"
)

// pgObjects lists the relations, functions and version rows of the
// connection's current schema, to compare states.
func pgObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return queryStrings(t, db, `
		SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace
		UNION ALL
		SELECT 'f ' || p.proname FROM pg_proc p
		WHERE p.pronamespace = current_schema()::regnamespace
		ORDER BY 1`)
}

func TestPostgresMigrateUpDownAndConcurrentStart(t *testing.T) {
	b := locktest.Postgres(t)
	db := b.OpenRaw(t, b.NewDSN(t))
	if e, err := schema.EngineOf(db); err != nil || e != schema.Postgres {
		t.Fatalf("EngineOf = %v, %v; want postgres", e, err)
	}
	empty := pgObjects(t, db)

	// Eight Migrate calls at once, each on a connection of its own.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = schema.Migrate(t.Context(), db) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	v, dirty, err := schema.Version(t.Context(), db)
	if err != nil || v != schema.Latest() || dirty {
		t.Fatalf("Version = %d, %v, %v; want %d, clean", v, dirty, err, schema.Latest())
	}
	migrated := pgObjects(t, db)
	if err := schema.Migrate(t.Context(), db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if diff := cmp.Diff(migrated, pgObjects(t, db)); diff != "" {
		t.Errorf("a second Migrate changed the schema (-before +after):\n%s", diff)
	}
	if err := schema.MigrateDown(t.Context(), db); err != nil {
		t.Fatalf("MigrateDown: %v", err)
	}
	// What is left is golang-migrate's version table, now empty.
	want := append(empty, "r "+schema.MigrationsTable, "i "+schema.MigrationsTable+"_pkey")
	got := pgObjects(t, db)
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("after MigrateDown (-want +got):\n%s", diff)
	}
	if v, _, err := schema.Version(t.Context(), db); err != nil || v != 0 {
		t.Errorf("Version after down = %d, %v; want 0", v, err)
	}
}

// Both engines carry the same migration versions, so Latest means the same
// on either.
func TestEnginesHaveTheSameVersions(t *testing.T) {
	names := func(dir string) []string {
		entries, err := fs.ReadDir(schema.Files(), dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	sqlite, pg := names("sqlite"), names("postgres")
	if len(sqlite) == 0 {
		t.Fatal("no SQLite migrations embedded")
	}
	if diff := cmp.Diff(sqlite, pg); diff != "" {
		t.Errorf("migration files differ between engines (-sqlite +postgres):\n%s", diff)
	}
}
