package lock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// A Manager whose database file is deleted (with its -wal and -shm) or
// replaced under it refuses to grant, extend or renew, instead of handing
// out leases that exclude the processes using the new file.
func TestDatabaseFileReplaced(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"replaced by a rename", func(t *testing.T, path string) {
			// An operator restores another database over the path (its
			// -wal and -shm removed, as they belong to the old file).
			other := filepath.Join(t.TempDir(), "other.db")
			mustOpenPath(t, other).Close()
			for _, suffix := range []string{"-wal", "-shm"} {
				os.Remove(path + suffix)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "locks.db")
			old := mustOpenPath(t, path, lock.WithRenewInterval(5*time.Millisecond))
			a := mustSession(t, old, "a")
			mustAcquire(t, a, "entity::held")
			doStarted, doLost := make(chan struct{}), make(chan error, 1)
			go func() {
				doLost <- a.Do(t.Context(), "entity::do", func(ctx context.Context, _ lock.Lease) error {
					close(doStarted)
					<-ctx.Done()
					return nil
				})
			}()
			<-doStarted

			tc.replace(t, path)
			fresh := mustOpenPath(t, path)
			b := mustSession(t, fresh, "b")
			if l := mustAcquire(t, b, "entity::held"); l.Token != 1 {
				t.Fatalf("the new file granted token %d", l.Token)
			}

			if _, err := a.TryAcquire(t.Context(), "entity::new"); !errors.Is(err, lock.ErrDatabaseReplaced) {
				t.Errorf("TryAcquire on the old Manager: %v; want ErrDatabaseReplaced", err)
			}
			if _, err := a.TryAcquire(t.Context(), "entity::held"); !errors.Is(err, lock.ErrDatabaseReplaced) {
				t.Errorf("refresh on the old Manager: %v; want ErrDatabaseReplaced", err)
			}
			if _, err := a.Extend(t.Context(), "entity::held", time.Minute); !errors.Is(err, lock.ErrDatabaseReplaced) {
				t.Errorf("Extend on the old Manager: %v; want ErrDatabaseReplaced", err)
			}
			if _, err := a.AcquireAll(t.Context(), "x", "y"); !errors.Is(err, lock.ErrDatabaseReplaced) {
				t.Errorf("AcquireAll on the old Manager: %v; want ErrDatabaseReplaced", err)
			}
			select {
			case err := <-doLost:
				if !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrDatabaseReplaced) {
					t.Errorf("Do = %v; want ErrLeaseLost caused by ErrDatabaseReplaced", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Do's renewals did not notice the replaced file")
			}
		})
	}
}
