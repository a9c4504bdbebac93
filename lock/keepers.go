package lock

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// errNotRenewed is the cause of a loss noticed on the holder's own clock.
var errNotRenewed = errors.New("not renewed before the local deadline")

// keeper renews one lease in the background and watches its local deadline.
type keeper struct {
	s      *Session
	lease  Lease
	ctx    context.Context // fn's
	cancel context.CancelCauseFunc

	deadline atomic.Pointer[time.Time] // on the deadline clock (Manager.deadlineNow)
	lostErr  atomic.Pointer[LeaseLostError]
	quit     chan struct{}
	check    chan struct{} // buffered 1: renew now, a release was notified
	wg       sync.WaitGroup
}

// keep starts renewing l, granted by a statement that began at start on
// the deadline clock.
func (s *Session) keep(ctx context.Context, l Lease, start time.Time) *keeper {
	k := &keeper{s: s, lease: l, quit: make(chan struct{}), check: make(chan struct{}, 1)}
	k.ctx, k.cancel = context.WithCancelCause(ctx)
	// The grant (or refresh) set ExpiresAt to its start + TTL, after start.
	k.setDeadline(start)
	s.m.keepers.add(k)
	s.m.queues.nudge()
	s.m.listen() // releases by other processes reach k at once (SQLite: while the Manager has waiters)
	k.wg.Go(k.renew)
	k.wg.Go(k.watch)
	return k
}

// setDeadline sets the local deadline from a successful grant or renewal
// whose statement began at start on the deadline clock.
func (k *keeper) setDeadline(start time.Time) {
	cfg := &k.s.m.cfg
	// Less a millisecond: the database stores start truncated to ms, so
	// its expiry may come up to a millisecond before start + TTL.
	d := start.Add(cfg.ttl - cfg.safetyMargin() - time.Millisecond)
	k.deadline.Store(&d)
}

// left is the time until the local deadline.
func (k *keeper) left() time.Duration {
	return k.deadline.Load().Sub(k.s.m.deadlineNow())
}

// stop ends renewal and cancels fn's ctx.
func (k *keeper) stop() {
	k.s.m.keepers.remove(k)
	close(k.quit)
	k.wg.Wait()
	k.cancel(context.Canceled)
}

func (k *keeper) lose(cause error) {
	e := &LeaseLostError{Lease: k.lease, Cause: cause}
	if k.lostErr.CompareAndSwap(nil, e) {
		k.s.lost(k.lease, cause)
		k.cancel(e)
	}
}

// poke asks the renewal loop to renew now.
func (k *keeper) poke() {
	select {
	case k.check <- struct{}{}:
	default: // a check is already pending
	}
}

func (k *keeper) lostAlready() bool { return k.lostErr.Load() != nil }

// renew refreshes the lease every renewal interval until Do returns or the
// lease is lost. It goes on after fn's ctx is cancelled: fn may still be
// running, and its work is covered until it returns.
func (k *keeper) renew() {
	m := k.s.m
	every := m.cfg.renewEvery()
	retryIn := max(every/8, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Do returning: stop a renewal in flight
		select {
		case <-k.quit:
			cancel()
		case <-ctx.Done():
		}
	}()

	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-k.quit:
			return
		case <-t.C:
		case <-k.check:
			t.Stop()
		}
		if k.lostAlready() {
			return
		}
		// An attempt may take until the local deadline: cut short, it
		// would cost a PostgreSQL connection (pgx closes a connection whose
		// query is cancelled), and the next attempt a new one.
		start := m.deadlineNow()
		err := k.renewOnce(ctx, max(every, k.left()))
		switch {
		case err == nil:
			k.setDeadline(start)
			// Counted once in effect, deadline included.
			m.count(k.s, func(c *counters) { c.renewals.Add(1) })
			t.Reset(every)
		case errors.Is(err, errNoLease):
			k.lose(ErrNotHeld)
			return
		case errors.Is(err, ErrDatabaseReplaced):
			k.lose(err)
			return
		case ctx.Err() != nil || errors.Is(err, ErrClosed):
			return
		default: // busy, interrupted by the per-attempt timeout, I/O: try again soon
			m.cfg.logger.Debug("entitylock: renewal failed; retrying",
				slog.String("entity", k.lease.Entity), slog.Any("err", err))
			t.Reset(retryIn)
		}
	}
}

func (k *keeper) renewOnce(ctx context.Context, timeout time.Duration) error {
	m := k.s.m
	if err := m.enter(); err != nil {
		return err
	}
	defer m.exit()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before := m.localNow()
	_, nowMs, err := m.eng.renew(ctx, k.lease, m.stmtNow(), m.cfg.ttl.Milliseconds())
	if err == nil {
		m.observe(before, nowMs)
	}
	return err
}

// watch cancels fn's ctx when the local deadline passes, or when the
// Manager closes. It re-reads the deadline clock at least every renewal
// interval, so an injected clock that jumps is noticed too.
func (k *keeper) watch() {
	m := k.s.m
	every := m.cfg.renewEvery()
	t := time.NewTimer(every)
	defer t.Stop()
	for !k.lostAlready() {
		left := k.left()
		if left <= 0 {
			k.lose(errNotRenewed)
			return
		}
		t.Reset(min(left, every))
		select {
		case <-k.quit:
			return
		case <-m.done: // Close: nobody will renew the lease any more
			k.lose(ErrClosed)
			return
		case <-t.C:
		}
	}
}

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
