//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package lock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openWakeFile opens, or makes with permissions perm, the wake file of the
// database file dbPath, takes its shared lock and maps it.
func openWakeFile(dbPath string, perm os.FileMode) (*wakeFile, error) {
	path := dbPath + "-wake"
	for range maxAttempts {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The Manager that closed last may have removed the file between
		// the open and the lock: use it only if it is still the one at path.
		if !samePath(f, path) {
			f.Close()
			continue
		}
		mem, err := mapWakeFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("map %s: %w", path, err)
		}
		return &wakeFile{path: path, f: f, mem: mem}, nil
	}
	return nil, fmt.Errorf("%s kept being removed", path)
}

// samePath reports whether path names the file f has open.
func samePath(f *os.File, path string) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, pi)
}

// mapWakeFile fills f to wakeFileSize with zeros, from where this process
// or another left it, and maps it shared, readable and writable.
func mapWakeFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size := st.Size(); size < wakeFileSize {
		if _, err := f.WriteAt(make([]byte, wakeFileSize-size), size); err != nil {
			return nil, err
		}
	}
	return syscall.Mmap(int(f.Fd()), 0, wakeFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

// close unmaps the file and, when no other Manager holds its lock,
// removes it.
func (w *wakeFile) close() error {
	err := syscall.Munmap(w.mem)
	if syscall.Flock(int(w.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && samePath(w.f, w.path) {
		if rmErr := os.Remove(w.path); !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}
	return errors.Join(err, w.f.Close())
}
