//go:build unix

package lock_test

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// A named pipe at the path is refused at once: opening it would block
// until a writer came.
func TestOpenRefusesANamedPipe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locks.db")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		m, err := lock.Open(ctx, path)
		if err == nil {
			m.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, lock.ErrInvalidDSN) {
			t.Errorf("Open(named pipe) = %v; want ErrInvalidDSN", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open(named pipe) blocked for 10 s")
	}
}
