package locktest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Run refuses a Backend that lacks a func field, naming every one missing;
// the two Backends of this tree lack none.
func TestBackendMissingFields(t *testing.T) {
	tests := []struct {
		name string
		b    Backend
		want []string
	}{
		{"empty", Backend{Name: "x"}, []string{"NewDSN", "LockWrites", "WithLockWait", "IsLockTimeout", "IsReadOnly"}},
		{"sqlite", SQLite(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.b.missing()); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("postgres", func(t *testing.T) {
		if diff := cmp.Diff([]string(nil), Postgres(t).missing()); diff != "" {
			t.Errorf("missing (-want +got):\n%s", diff)
		}
	})
}
