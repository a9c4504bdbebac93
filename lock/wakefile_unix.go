//go:build (linux || darwin || dragonfly || freebsd || netbsd || openbsd) && !(arm || mips || mipsle)

// (On 32-bit ARM and MIPS, Go's 64-bit atomic operations take a lock of
// the process's own: they are not atomic between processes.)

package lock

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openWakeFile opens, or makes with permissions perm, the wake file of the
// database file dbPath, takes its shared lock and maps it.
func openWakeFile(dbPath string, perm os.FileMode) (*wakeFile, error) {
	path := dbPath + "-wake"
	for range maxAttempts {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			if err := makeWakeFile(path, perm); err != nil {
				return nil, err
			}
			continue
		}
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
		if ok, err := wholeWakeFile(f); err != nil || !ok {
			// A file cut short (by hand, or by a crash of the machine
			// before its data reached the disk) is removed by whoever can
			// take it alone, and made anew.
			if err == nil && syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && samePath(f, path) {
				os.Remove(path)
				f.Close()
				continue
			}
			f.Close()
			if err == nil {
				err = errors.New("not the size of a wake file")
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		mem, err := syscall.Mmap(int(f.Fd()), 0, wakeFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("map %s: %w", path, err)
		}
		return &wakeFile{path: path, f: f, mem: mem}, nil
	}
	return nil, fmt.Errorf("%s kept being removed", path)
}

// makeWakeFile makes the wake file at path unless one is there: written
// whole under another name, then linked, so that every process sees it
// whole (no hole a write through the map would need space for, and no
// zeros written over another process's marks).
func makeWakeFile(path string, perm os.FileMode) error {
	tmp := path + "-" + rand.Text()[:8]
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, err = f.Write(make([]byte, wakeFileSize))
	if err == nil {
		err = f.Sync() // whole on the disk before its name is
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
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

// wholeWakeFile reports whether f has the size of a wake file.
func wholeWakeFile(f *os.File) (bool, error) {
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	return st.Size() == wakeFileSize, nil
}

// close unmaps the file and, when no other Manager holds its lock,
// removes it; a file that cannot be removed stays, as SQLite leaves a -wal
// it cannot remove.
func (w *wakeFile) close() error {
	err := syscall.Munmap(w.mem)
	if syscall.Flock(int(w.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && samePath(w.f, w.path) {
		os.Remove(w.path)
	}
	return errors.Join(err, w.f.Close())
}
