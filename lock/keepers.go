package lock

import "sync"

// keepers indexes the Manager's running Do calls by entity, so that a
// release made through the same Manager tells them at once that their lease
// is gone, instead of at their next renewal. Releases by other processes are
// still found by the renewal.
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
