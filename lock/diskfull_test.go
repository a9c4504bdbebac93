//go:build linux

package lock_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entitylock/entitylock/lock"
)

// mountSmallFS mounts a 1 MiB tmpfs for t, unmounted when t ends. It needs
// root (CI runs as root); elsewhere the test skips, saying so.
func mountSmallFS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// A full disk is an error that errors.Is recognises and that says so; the
// database stays intact, and works again once space is freed.
func TestDiskFull(t *testing.T) {
	dir := mountSmallFS(t)
	path := filepath.Join(dir, "locks.db")
	m := mustOpenPath(t, path)
	s := mustSession(t, m, "a")
	mustAcquire(t, s, "entity::before")
	// Leave a little room, then grant until it runs out.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	var failed error
	granted := 0
	for i := range 10_000 {
		if _, err := s.TryAcquire(t.Context(), fmt.Sprintf("entity::%05d-%s", i, strings.Repeat("x", 500))); err != nil {
			failed = err
			break
		}
		granted++
	}
	if !errors.Is(failed, lock.ErrDiskFull) || !strings.Contains(failed.Error(), "disk full") {
		t.Fatalf("after %d grants: %v; want ErrDiskFull saying the disk is full", granted, failed)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := m.DB().QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	all, err := m.AllLeases(t.Context())
	if err != nil || len(all) != granted+1 {
		t.Errorf("%d leases, %v; want the %d granted before the disk filled", len(all), err, granted+1)
	}
	mustAcquire(t, s, "entity::after")
	t.Logf("disk full after %d grants: %v", granted, failed)
}
