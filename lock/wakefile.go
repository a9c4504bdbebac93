package lock

import (
	"errors"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

// A wake file, beside a SQLite database file (its name with "-wake"
// added), lets a release in one process wake the waiters of another
// without either reading the database for it. Its entities are hashed to
// wakeSlots slots, and each slot has two words, shared by every process
// that maps the file:
//
//   - a mark: until when, in Unix milliseconds, some Manager waits for an
//     entity of the slot. A waiting Manager marks its entities' slots,
//     then reads their leases (so that a release committed before the mark
//     is seen there), and marks again every wakeRemarkEvery while it
//     waits; a mark left by a process that died lapses after wakeMarkFor.
//   - a bell: a count that a release of an entity of the slot, once
//     committed, adds one to, when the slot is marked, before it writes a
//     byte at the start of the file. That write is what the waiting
//     Managers' file watches see; they then compare the bells of their
//     entities with those they last saw, and wake the lines whose bell
//     rang.
//
// Either the release sees the mark, or the waiter's read after its mark
// sees the release: while a mark lasts, no wake-up is missed for want of
// it. When a Manager marks again after its own marks lapsed (the process
// was stopped for longer than wakeMarkFor, the host slept, the clock
// stepped forwards), it reads the leases of all its entities anew. A release that does not ring (a process that died between its commit and
// the bell, an older version of this package, SQL written by hand) wakes
// nobody: waiters learn of it at their next poll, on their backoff. Two
// entities of one slot share its bell, so a release of one also wakes the
// lines of the other, whose heads try and wait again. Marks are read
// against the system's wall clock: a step of it backwards makes releases
// ring for slots nobody waits on any more, until the marks lapse; a step
// forwards past wakeMarkFor silences the marks until the waiters mark
// again, wakeRemarkEvery later at most, and read the leases.
//
// The file is made by the first Manager that opens the database to write
// (read-only ones use none): wakeFileSize bytes, all written under another
// name and then linked, so that no process sees it partly made and no
// write through the map needs space the disk may not have (except on
// copy-on-write file systems, where any write may). It never grows. Each
// Manager maps it into memory, so a release reads its mark with one load,
// and holds a shared lock on it (flock) until it closes; the one that
// closes last removes it. It must not be removed or truncated by hand
// while processes use it.
const (
	wakeSlots       = 4096
	wakeMarksAt     = 4096 // the first page holds the byte that releases write
	wakeBellsAt     = wakeMarksAt + 8*wakeSlots
	wakeFileSize    = wakeBellsAt + 8*wakeSlots // 69,632 bytes
	wakeMarkFor     = 6 * time.Second
	wakeRemarkEvery = 2 * time.Second
)

// errNoWakeFiles: this package makes no wake files on this system.
var errNoWakeFiles = errors.New("no wake files on this system")

// wakeFile is a wake file, mapped. Its methods are safe for concurrent use
// until close.
type wakeFile struct {
	path string
	f    *os.File
	mem  []byte // wakeFileSize bytes, mapped shared
}

// wakeSlot is entity's slot: FNV-1a, the same in every process.
func wakeSlot(entity string) int {
	h := uint32(2166136261)
	for i := range len(entity) {
		h ^= uint32(entity[i])
		h *= 16777619
	}
	return int(h % wakeSlots)
}

func (w *wakeFile) word(at int) *int64 {
	return (*int64)(unsafe.Pointer(&w.mem[at]))
}

// mark makes entity's slot marked until untilMs at least.
func (w *wakeFile) mark(entity string, untilMs int64) {
	p := w.word(wakeMarksAt + 8*wakeSlot(entity))
	for {
		old := atomic.LoadInt64(p)
		if old >= untilMs || atomic.CompareAndSwapInt64(p, old, untilMs) {
			return
		}
	}
}

// marked reports whether entity's slot is marked now.
func (w *wakeFile) marked(entity string) bool {
	return atomic.LoadInt64(w.word(wakeMarksAt+8*wakeSlot(entity))) > time.Now().UnixMilli()
}

// ring tells the Managers waiting for entity that it was released: when
// its slot is marked, it adds one to the slot's bell and writes the byte
// their file watches see. It is a hint, so it fails silently.
func (w *wakeFile) ring(entity string) {
	if !w.marked(entity) {
		return
	}
	atomic.AddInt64(w.word(wakeBellsAt+8*wakeSlot(entity)), 1)
	w.f.WriteAt([]byte{0}, 0)
}

// bell reads the bell of entity's slot.
func (w *wakeFile) bell(entity string) int64 {
	return atomic.LoadInt64(w.word(wakeBellsAt + 8*wakeSlot(entity)))
}
