package locktest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
	"github.com/entitylock/entitylock/schema"
)

// A schema newer than the code, or marked dirty by a migration that failed
// half-way, stops Open with a clear error and leaves the database as it
// was.
func testOpenRefusesUnusableSchema(t *testing.T, h *harness) {
	for _, tc := range []struct {
		name, update string
		want         error
	}{
		{"newer", `UPDATE ` + schema.MigrationsTable + ` SET version = version + 1`, lock.ErrSchemaTooNew},
		{"dirty", `UPDATE ` + schema.MigrationsTable + ` SET dirty = true`, lock.ErrSchemaDirty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := h.dsn(t)
			m := h.openDSN(t, dsn)
			mustAcquire(t, mustSession(t, m, "a"), "entity::x")
			raw := h.raw(t, dsn)
			if _, err := raw.Exec(tc.update); err != nil {
				t.Fatal(err)
			}
			dump := func() []string {
				return append(dumpLeases(t, raw), testkit.QueryStrings(t, raw,
					`SELECT 'version|' || version || '|' || dirty FROM `+schema.MigrationsTable)...)
			}
			before := dump()
			if m, err := lock.Open(t.Context(), dsn); !errors.Is(err, tc.want) {
				if err == nil {
					m.Close()
				}
				t.Fatalf("Open: got err %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(before, dump()); diff != "" {
				t.Errorf("database changed (-before +after):\n%s", diff)
			}
		})
	}
}
