package lock

import (
	"maps"
	"slices"
	"sync"
)

// keepers indexes the Manager's running Do calls by entity, so that a
// release made through the same Manager tells them at once that their lease
// is gone, instead of at their next renewal. A release by another process,
// reported by the change feed (changes.go), makes them renew at once: it
// may be of an earlier grant's release, so only the renewal can tell.
type keepers struct {
	mu       sync.Mutex
	byEntity map[string]map[*keeper]struct{}
}

func (ks *keepers) add(k *keeper) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.byEntity == nil {
		ks.byEntity = make(map[string]map[*keeper]struct{})
	}
	set := ks.byEntity[k.lease.Entity]
	if set == nil {
		set = make(map[*keeper]struct{})
		ks.byEntity[k.lease.Entity] = set
	}
	set[k] = struct{}{}
}

func (ks *keepers) remove(k *keeper) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	set := ks.byEntity[k.lease.Entity]
	delete(set, k)
	if len(set) == 0 {
		delete(ks.byEntity, k.lease.Entity)
	}
}

// released marks as lost the running Do calls on entity whose lease a
// release took: those of session (any session when session is "", as for
// ForceRelease).
func (ks *keepers) released(entity, session string) {
	ks.mu.Lock()
	var hit []*keeper
	for k := range ks.byEntity[entity] {
		if session == "" || k.lease.SessionID == session {
			hit = append(hit, k)
		}
	}
	ks.mu.Unlock()
	for _, k := range hit {
		k.lose(ErrNotHeld)
	}
}

// check makes the running Do calls on entity renew now.
func (ks *keepers) check(entity string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for k := range ks.byEntity[entity] {
		k.poke()
	}
}

// checkAll makes every running Do call renew now, after a time in which
// notifications could have been missed.
func (ks *keepers) checkAll() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for _, set := range ks.byEntity {
		for k := range set {
			k.poke()
		}
	}
}

// entities returns the entities that running Do calls hold, in no order.
func (ks *keepers) entities() []string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return slices.Collect(maps.Keys(ks.byEntity))
}

// allHold reports whether every running Do call on entity holds the grant
// (session, token).
func (ks *keepers) allHold(entity, session string, token int64) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for k := range ks.byEntity[entity] {
		if k.lease.SessionID != session || k.lease.Token != token {
			return false
		}
	}
	return true
}
