package locktest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of one entity's lease that the histories of
// testLinearizable are checked against, as the library documents it
// (Session.TryAcquire, Release, Extend, Manager.Holder, ForceRelease,
// PurgeExpired). Times are Unix milliseconds.

// callKind names a call of the lock API.
type callKind uint8

const (
	callTryAcquire callKind = iota
	callRelease
	callExtend
	callHolder
	callForceRelease
	callPurgeExpired
)

func (k callKind) String() string {
	return [...]string{"TryAcquire", "Release", "Extend", "Holder", "ForceRelease", "PurgeExpired"}[k]
}

// call is one call as the model sees it.
type call struct {
	kind    callKind
	burst   int    // the burst of concurrent calls it belongs to
	now     int64  // the injected clock, standing still during the burst
	entity  string // "" for PurgeExpired, which acts on every entity
	manager int    // which Manager made the call
	session string // TryAcquire, Release, Extend
	ttl     int64  // the calling Manager's TTL (TryAcquire)
	by      int64  // Extend's duration
}

// leaseValue is a lock.Lease in milliseconds, comparable with ==.
type leaseValue struct {
	entity     string
	session    string
	token      int64
	acquiredAt int64
	expiresAt  int64
	reclaimed  bool
}

// outcome is how a call ended.
type outcome uint8

const (
	outOK           outcome = iota // no error
	outHeld                        // a *HeldError; result.lease is its Holder
	outHeldChanging                // ErrHeld without a holder: it kept changing
	outNotHeld                     // ErrNotHeld
)

// result is what a call returned. Any other error fails the test before the
// check.
type result struct {
	outcome  outcome
	lease    leaseValue // TryAcquire, Extend, Holder; the holder of outHeld
	released bool       // Release, ForceRelease
	purged   int        // PurgeExpired, over every entity: not checked here
}

// leaseState is the state of one entity. A released or purged lease and
// no lease at all behave alike, so both are !held.
type leaseState struct {
	held      bool       // a lease not released or purged, live or expired
	lease     leaseValue // when held
	maxToken  int64      // the greatest token granted so far
	anyGrants bool       // maxToken is set
}

func (s leaseState) live(now int64) bool { return s.held && s.lease.expiresAt > now }

func (s leaseState) dropped() leaseState {
	s.held, s.lease = false, leaseValue{}
	return s
}

// step applies c to s, and reports whether r is what the specification
// allows c to return in state s, and the state after it.
func step(s leaseState, c call, r result) (bool, leaseState) {
	switch c.kind {
	case callTryAcquire:
		switch {
		case s.live(c.now) && s.lease.session != c.session:
			// Refused, naming the holder. An attempt whose holder vanished
			// before it could be read, eight times over, names none.
			ok := (r.outcome == outHeld && r.lease == s.lease) || r.outcome == outHeldChanging
			return ok, s
		case s.live(c.now):
			// A refresh: same grant, its expiry pushed to now + TTL, never
			// brought forward.
			want := s.lease
			want.expiresAt = max(s.lease.expiresAt, c.now+c.ttl)
			if r.outcome != outOK || r.lease != want {
				return false, s
			}
			s.lease = want
			return true, s
		default:
			// A new grant, whose token is any value above every earlier one.
			want := leaseValue{entity: c.entity, session: c.session, token: r.lease.token,
				acquiredAt: c.now, expiresAt: c.now + c.ttl, reclaimed: s.held}
			if r.outcome != outOK || r.lease != want || (s.anyGrants && want.token <= s.maxToken) {
				return false, s
			}
			return true, leaseState{held: true, lease: want, maxToken: want.token, anyGrants: true}
		}
	case callRelease:
		mine := s.held && s.lease.session == c.session
		if r.outcome != outOK || r.released != mine {
			return false, s
		}
		if mine {
			s = s.dropped()
		}
		return true, s
	case callForceRelease:
		if r.outcome != outOK || r.released != s.held {
			return false, s
		}
		return true, s.dropped()
	case callExtend:
		if !s.live(c.now) || s.lease.session != c.session {
			return r.outcome == outNotHeld, s
		}
		want := s.lease
		want.expiresAt += c.by
		if r.outcome != outOK || r.lease != want {
			return false, s
		}
		s.lease = want
		return true, s
	case callHolder:
		if !s.live(c.now) {
			return r.outcome == outNotHeld, s
		}
		return r.outcome == outOK && r.lease == s.lease, s
	case callPurgeExpired:
		if r.outcome != outOK {
			return false, s
		}
		if s.held && s.lease.expiresAt <= c.now {
			s = s.dropped()
		}
		return true, s
	}
	return false, s
}

// leaseModel is the porcupine model of one entity's lease; times are shown
// relative to base.
func leaseModel(base int64) porcupine.Model {
	return porcupine.Model{
		Partition: partitionByEntity,
		Init:      func() any { return leaseState{} },
		Step: func(state, input, output any) (bool, any) {
			return step(state.(leaseState), input.(call), output.(result))
		},
		DescribeOperation: func(input, output any) string {
			return describeCall(base, input.(call), output.(result))
		},
		DescribeState: func(state any) string {
			return describeState(base, state.(leaseState))
		},
	}
}

// partitionByEntity splits a history into one per entity; a PurgeExpired
// call belongs to every one. The partitions come in entity order.
func partitionByEntity(history []porcupine.Operation) [][]porcupine.Operation {
	byEntity := map[string][]porcupine.Operation{}
	var purges []porcupine.Operation
	for _, op := range history {
		c := op.Input.(call)
		if c.kind == callPurgeExpired {
			purges = append(purges, op)
			continue
		}
		byEntity[c.entity] = append(byEntity[c.entity], op)
	}
	var parts [][]porcupine.Operation
	for _, e := range slices.Sorted(maps.Keys(byEntity)) {
		parts = append(parts, append(byEntity[e], purges...))
	}
	return parts
}

func describeCall(base int64, c call, r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "m%d ", c.manager)
	switch c.kind {
	case callTryAcquire, callRelease:
		fmt.Fprintf(&b, "%s.%s(%s)", c.session, c.kind, c.entity)
	case callExtend:
		fmt.Fprintf(&b, "%s.Extend(%s, %dms)", c.session, c.entity, c.by)
	case callHolder, callForceRelease:
		fmt.Fprintf(&b, "%s(%s)", c.kind, c.entity)
	case callPurgeExpired:
		b.WriteString("PurgeExpired()")
	}
	fmt.Fprintf(&b, " @%+dms → ", c.now-base)
	switch {
	case r.outcome == outHeld:
		fmt.Fprintf(&b, "ErrHeld by %s", describeLease(base, r.lease))
	case r.outcome == outHeldChanging:
		b.WriteString("ErrHeld (holder kept changing)")
	case r.outcome == outNotHeld:
		b.WriteString("ErrNotHeld")
	case c.kind == callRelease || c.kind == callForceRelease:
		fmt.Fprint(&b, r.released)
	case c.kind == callPurgeExpired:
		fmt.Fprintf(&b, "%d rows", r.purged)
	default:
		b.WriteString(describeLease(base, r.lease))
	}
	return b.String()
}

func describeLease(base int64, l leaseValue) string {
	s := fmt.Sprintf("%s #%d [%+d, %+d)ms", l.session, l.token, l.acquiredAt-base, l.expiresAt-base)
	if l.reclaimed {
		s += " reclaimed"
	}
	return s
}

func describeState(base int64, s leaseState) string {
	held := "free"
	if s.held {
		held = "held by " + describeLease(base, s.lease)
	}
	if !s.anyGrants {
		return held + ", never granted"
	}
	return fmt.Sprintf("%s, tokens so far ≤ %d", held, s.maxToken)
}

// explainIllegal describes, for each entity whose history has no
// linearization, the first burst that could not be placed: the state before
// it and its calls.
func explainIllegal(base int64, history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var b strings.Builder
	parts := partitionByEntity(history)
	for p, partials := range info.PartialLinearizations() {
		ops := parts[p]
		longest := slices.MaxFunc(partials, func(a, b []int) int { return cmp.Compare(len(a), len(b)) })
		if len(longest) == len(ops) {
			continue // this entity's history is linearizable
		}
		placed := map[int]bool{}
		for _, id := range longest {
			placed[id] = true
		}
		// Bursts do not overlap in time, so the longest linearization holds
		// every call of the bursts before the first call it could not place.
		burst := -1
		for id, op := range ops {
			if c := op.Input.(call); !placed[id] && (burst < 0 || c.burst < burst) {
				burst = c.burst
			}
		}
		state := leaseState{}
		for _, id := range longest {
			if c := ops[id].Input.(call); c.burst < burst {
				_, state = step(state, c, ops[id].Output.(result))
			}
		}
		var entity string
		for _, op := range ops {
			if c := op.Input.(call); c.entity != "" {
				entity = c.entity
				break
			}
		}
		fmt.Fprintf(&b, "\n%s: no order of burst %d fits the model. Before it: %s. Its calls (%d placed):\n",
			entity, burst, describeState(base, state), countPlaced(ops, placed, burst))
		for id, op := range ops {
			if c := op.Input.(call); c.burst == burst {
				mark := "  "
				if placed[id] {
					mark = "✓ "
				}
				fmt.Fprintf(&b, "  %s%s\n", mark, describeCall(base, c, op.Output.(result)))
			}
		}
	}
	return b.String()
}

func countPlaced(ops []porcupine.Operation, placed map[int]bool, burst int) int {
	n := 0
	for id, op := range ops {
		if placed[id] && op.Input.(call).burst == burst {
			n++
		}
	}
	return n
}
