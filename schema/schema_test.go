package schema_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ncruces/go-sqlite3/driver"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/schema"
)

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := driver.Open("file:" + path + "?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// objects lists the schema objects and the version rows, to compare states.
func objects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	out := testkit.QueryStrings(t, db, `SELECT type || ' ' || name FROM sqlite_schema ORDER BY 1`)
	var exists bool
	db.QueryRow(`SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = ?)`, schema.MigrationsTable).Scan(&exists)
	if exists {
		vrows, err := db.Query(`SELECT version, dirty FROM ` + schema.MigrationsTable)
		if err != nil {
			t.Fatal(err)
		}
		defer vrows.Close()
		for vrows.Next() {
			var v, d int
			if err := vrows.Scan(&v, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("version %d dirty %d", v, d))
		}
	}
	return out
}

func TestMigrateUpIsIdempotentAndDownReverts(t *testing.T) {
	ctx := t.Context()
	db := openDB(t, filepath.Join(t.TempDir(), "m.db"))
	if _, err := db.Exec(`CREATE TABLE app (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	empty := objects(t, db)

	if err := schema.SQLite.Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	migrated := objects(t, db)
	if err := schema.SQLite.Migrate(ctx, db); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if diff := cmp.Diff(migrated, objects(t, db)); diff != "" {
		t.Errorf("second Migrate changed the schema (-first +second):\n%s", diff)
	}
	v, dirty, err := schema.SQLite.Version(ctx, db)
	if err != nil || v != schema.Latest() || dirty {
		t.Fatalf("Version = %d, %v, %v; want %d, false, nil", v, dirty, err, schema.Latest())
	}

	if err := schema.SQLite.MigrateDown(ctx, db); err != nil {
		t.Fatalf("MigrateDown: %v", err)
	}
	// The host application's table survives; only the version table remains
	// of ours, with no row.
	want := append(empty, "table "+schema.MigrationsTable)
	if diff := cmp.Diff(want, objects(t, db)); diff != "" {
		t.Errorf("after down (-want +got):\n%s", diff)
	}
}

func TestUnusableSchemaIsLeftUntouched(t *testing.T) {
	tests := []struct {
		name    string
		version int
		dirty   bool
		want    error
	}{
		{"newer than code", int(schema.Latest()) + 1, false, schema.ErrTooNew},
		{"dirty", int(schema.Latest()), true, schema.ErrDirty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), "m.db"))
			if err := schema.SQLite.Migrate(t.Context(), db); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE `+schema.MigrationsTable+` SET version = ?, dirty = ?`, tt.version, tt.dirty); err != nil {
				t.Fatal(err)
			}
			before := objects(t, db)
			if err := schema.SQLite.Migrate(t.Context(), db); !errors.Is(err, tt.want) {
				t.Fatalf("Migrate: got err %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(before, objects(t, db)); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
			}
		})
	}
}

// Eight pools open the same fresh file at once: all succeed and the schema
// is migrated once, to one clean version row.
func TestConcurrentMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	const n = 8
	dbs := make([]*sql.DB, n)
	for i := range dbs {
		dbs[i] = openDB(t, path)
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			errs[i] = schema.SQLite.Migrate(context.Background(), db)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	got := objects(t, dbs[0])
	want := []string{
		"table entitylock_fence",
		"table entitylock_leases",
		"table entitylock_owners",
		"table " + schema.MigrationsTable,
		"trigger entitylock_leases_delete",
		"trigger entitylock_owners_insert",
		"trigger entitylock_owners_update",
		fmt.Sprintf("version %d dirty 0", schema.Latest()),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schema after concurrent Migrate (-want +got):\n%s", diff)
	}
}

// Every engine's folder holds the same migration versions, up and down:
// Latest and Force speak of one version sequence for all engines.
func TestEveryEngineHasTheSameVersions(t *testing.T) {
	dirs, err := fs.ReadDir(schema.Files(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for i, d := range dirs {
		names, err := fs.Glob(schema.Files(), d.Name()+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for j, n := range names {
			// "dir/000001_create_leases.up.sql" → "000001.up"
			base := strings.TrimSuffix(path.Base(n), ".sql")
			version, _, _ := strings.Cut(base, "_")
			names[j] = version + path.Ext(base)
		}
		if i == 0 {
			first = names
			continue
		}
		if diff := cmp.Diff(first, names); diff != "" {
			t.Errorf("%s and %s differ in versions (-%s +%s):\n%s", dirs[0].Name(), d.Name(), dirs[0].Name(), d.Name(), diff)
		}
	}
	if len(dirs) < 2 || len(first) == 0 {
		t.Fatalf("embedded folders %v, first has %v: want at least two engines with migrations", dirs, first)
	}
	if got := fmt.Sprintf("%06d", schema.Latest()); first[len(first)-1][:6] != got {
		t.Errorf("Latest() = %s; the newest file is %s", got, first[len(first)-1])
	}
}
