package lock

import (
	"maps"
	"slices"
	"sync"
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
}

// A waiter is one goroutine's place in an entity's line.
type waiter struct {
	entity string
	wake   chan struct{} // buffered 1: a wake-up is never lost nor blocks
}

// join puts a new waiter at the end of entity's line.
func (q *waitQueues) join(entity string) *waiter {
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
	for _, line := range q.lines {
		signal(line[0])
	}
}
