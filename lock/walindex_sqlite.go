package lock

import (
	"bytes"
	"os"
)

// walIndexHeaderSize is the size of the first copy of the WAL-index header
// at the start of a WAL database's -shm file, in SQLite's documented format
// (https://www.sqlite.org/walformat.html, "The WAL-Index Header"): its
// change counter, last valid frame and checksums change with every commit,
// and the committer writes this copy last, once the commit is visible.
const walIndexHeaderSize = 48

// walIndex reads the WAL-index header from a -shm file, to tell without SQL
// whether anything was committed since the last read: one pread, where a
// statement costs a read transaction.
type walIndex struct {
	f    *os.File
	last [walIndexHeaderSize]byte
	buf  [walIndexHeaderSize]byte
}

// openWALIndex opens the -shm file of the database at path and reads the
// header, or returns nil when there is none to read.
func openWALIndex(path string) *walIndex {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil
	}
	x := &walIndex{f: f}
	x.changed()
	return x
}

// changed reports whether the header differs from the one last read (or
// could not be read: a caller then asks SQLite).
func (x *walIndex) changed() bool {
	if n, err := x.f.ReadAt(x.buf[:], 0); err != nil || n != len(x.buf) {
		return true
	}
	if bytes.Equal(x.buf[:], x.last[:]) {
		return false
	}
	x.last = x.buf
	return true
}

func (x *walIndex) close() { x.f.Close() }
