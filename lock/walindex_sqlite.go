package lock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
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
// statement costs a read transaction. It also reads frame headers in the
// -wal file, to tell whether a commit is under way.
type walIndex struct {
	f    *os.File
	wal  *os.File // nil when the -wal file could not be opened
	last [walIndexHeaderSize]byte
	buf  [walIndexHeaderSize]byte
}

// openWALIndex opens the -shm and -wal files of the database at path and
// reads the header, or returns nil when there is none to read.
func openWALIndex(path string) *walIndex {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil
	}
	x := &walIndex{f: f}
	if wal, err := os.Open(path + "-wal"); err == nil {
		x.wal = wal
	}
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

// committing reports whether the -wal file holds a frame written after the
// last commit of the header changed last read: a commit under way, not yet
// visible. It reads the log's header and the frame after that commit (SQLite's
// documented format, https://www.sqlite.org/fileformat2.html#walformat): a
// frame of the log's current generation carries the log header's salts,
// which the WAL-index header copies. It reports true whenever it cannot
// tell: no -wal file, a short read, a header it does not understand (a
// WAL-index header in another byte order, say), a log being restarted.
func (x *walIndex) committing() bool {
	if x.wal == nil {
		return true
	}
	hdr := &x.last
	// isInit (offset 12), szPage (14: the page size, 1 for 65536),
	// mxFrame (16: the last committed frame), both in the byte order of
	// the host; aSalt (32), as the log's bytes.
	if hdr[12] != 1 {
		return true
	}
	pageSize := int64(binary.NativeEndian.Uint16(hdr[14:16]))
	if pageSize == 1 {
		pageSize = 1 << 16
	}
	salts := hdr[32:40]
	// The log's header: page size (offset 8) and salts (16), big-endian.
	var logHdr [32]byte
	if n, _ := x.wal.ReadAt(logHdr[:], 0); n != len(logHdr) ||
		int64(binary.BigEndian.Uint32(logHdr[8:12])) != pageSize || !bytes.Equal(logHdr[16:24], salts) {
		return true
	}
	// The header of the frame after the last committed one; its salts at
	// offset 8.
	mxFrame := int64(binary.NativeEndian.Uint32(hdr[16:20]))
	var frame [24]byte
	n, err := x.wal.ReadAt(frame[:], int64(len(logHdr))+mxFrame*(pageSize+int64(len(frame))))
	if n == 0 && errors.Is(err, io.EOF) {
		return false // nothing written after it
	}
	return n != len(frame) || bytes.Equal(frame[8:16], salts)
}

func (x *walIndex) close() {
	x.f.Close()
	if x.wal != nil {
		x.wal.Close()
	}
}
