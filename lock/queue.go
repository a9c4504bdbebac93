package lock

import (
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// waitQueues keeps, per entity, the FIFO line of this Manager's goroutines
// waiting in Acquire or AcquireAll. Only the head of a line polls the
// database; a release in this process wakes the head alone, and when the
// head leaves the line the next waiter becomes head and is woken.
type waitQueues struct {
	mu    sync.Mutex
	lines map[string][]*waiter
	// linesChanged (buffered 1) is signalled when a line is made or
	// removed, or a Do call begins (nudge): the SQLite watcher watches
	// while there are lines, and marks and checks a new line's entity, or
	// a new Do call's, at once.
	linesChanged chan struct{}

	// woken counts the wake-ups of releases (wake, wakeAll), by bucket of
	// the entity's hash, so that a release told between a waiter's refused
	// attempt and its joining a line is not lost: join compares them with
	// the mark taken before the attempt.
	woken    [wakeBuckets]atomic.Uint64
	wokenAll atomic.Uint64
}

// wakeBuckets is how many counters woken has. Entities that share one
// only cost a waiter an early attempt.
const wakeBuckets = 64

var wakeSeed = maphash.MakeSeed()

func wakeBucket(entity string) uint64 { return maphash.String(wakeSeed, entity) % wakeBuckets }

// A wakeMark is what the wake-up counters read before an attempt.
type wakeMark struct {
	all uint64
	by  [wakeBuckets]uint64
}

// mark reads the wake-up counters; call it before an attempt that may end
// in join.
func (q *waitQueues) mark() wakeMark {
	mk := wakeMark{all: q.wokenAll.Load()}
	for i := range q.woken {
		mk.by[i] = q.woken[i].Load()
	}
	return mk
}

// wokenSince reports whether entity may have been released since mk; the
// caller holds mu.
func (q *waitQueues) wokenSince(entity string, mk *wakeMark) bool {
	return q.wokenAll.Load() != mk.all || q.woken[wakeBucket(entity)].Load() != mk.by[wakeBucket(entity)]
}

// A waiter is one goroutine's place in an entity's line.
type waiter struct {
	entity string
	wake   chan struct{} // buffered 1: a wake-up is never lost nor blocks
}

// join puts a new waiter at the end of entity's line. mk is the mark taken
// before the attempt that found entity held: when the waiter makes a new
// line and a release of entity was told since, it starts woken, since that
// wake-up found no line. (In a line that was there, the head had it.)
func (q *waitQueues) join(entity string, mk *wakeMark) *waiter {
	w := &waiter{entity: entity, wake: make(chan struct{}, 1)}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lines == nil {
		q.lines = make(map[string][]*waiter)
	}
	line := q.lines[entity]
	q.lines[entity] = append(line, w)
	if len(line) == 0 {
		q.changed()
		if q.wokenSince(entity, mk) {
			signal(w)
		}
	}
	return w
}

// leave removes w from its line, waking the new head if w was the head.
func (q *waitQueues) leave(w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[w.entity]
	i := slices.Index(line, w)
	if i < 0 {
		return
	}
	line = slices.Delete(line, i, i+1)
	if len(line) == 0 {
		delete(q.lines, w.entity)
		q.changed()
		return
	}
	q.lines[w.entity] = line
	if i == 0 {
		signal(line[0])
	}
}

// isHead reports whether w is first in its line.
func (q *waitQueues) isHead(w *waiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lines[w.entity]
	return len(line) > 0 && line[0] == w
}

// wake tells the head of entity's line, if any, that entity may be free.
func (q *waitQueues) wake(entity string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.woken[wakeBucket(entity)].Add(1)
	if line := q.lines[entity]; len(line) > 0 {
		signal(line[0])
	}
}

// changed signals linesChanged; the caller holds mu.
func (q *waitQueues) changed() {
	select {
	case q.linesChanged <- struct{}{}:
	default: // a signal is already pending
	}
}

// nudge signals linesChanged: a Do call began.
func (q *waitQueues) nudge() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.changed()
}

// entities returns the entities that have a line, in no order.
func (q *waitQueues) entities() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Collect(maps.Keys(q.lines))
}

// empty reports whether nobody waits.
func (q *waitQueues) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.lines) == 0
}

func signal(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// wakeAll wakes the head of every line, after a time in which wake-ups
// could have been missed.
func (q *waitQueues) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.wokenAll.Add(1)
	for _, line := range q.lines {
		signal(line[0])
	}
}
