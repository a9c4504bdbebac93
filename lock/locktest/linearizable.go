package locktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/entitylock/entitylock/internal/testkit"
	"github.com/entitylock/entitylock/lock"
)

// HistoryHTMLEnv names a directory: when it is set, the linearizability
// check writes porcupine's visualization of each history it checks there,
// as <test name>.html.
const HistoryHTMLEnv = "ENTITYLOCK_HISTORY_HTML"

// The shape of the histories testLinearizable records.
const (
	linBursts        = 250 // bursts of concurrent calls
	linCallsPerBurst = 8   // calls started at once in a burst
	linTick          = 250 // ms; TTLs, extensions and clock moves are multiples of it, so expiries often fall exactly on "now"
)

var (
	linTTLs     = []time.Duration{4 * linTick * time.Millisecond, 6 * linTick * time.Millisecond, 8 * linTick * time.Millisecond}
	linSessions = []string{"s0", "s1", "s2"}
	linEntities = []string{"e0", "e1", "e2"}
)

// Three Managers on one database, each with its own TTL, share one injected
// clock and the same session ids (so one id is used from several Managers at
// once) and make bursts of concurrent TryAcquire, Release, Extend, Holder,
// ForceRelease and PurgeExpired calls on three entities. The clock stands
// still during a burst and moves, often past expiries, between bursts, when
// no call is in flight. The history must be linearizable with respect to
// leaseModel: some order of the calls that respects their real-time order
// is one the documented sequential semantics allow, entity by entity.
func testLinearizable(t *testing.T, h *harness) {
	clk := newTestClock()
	dsn := h.dsn(t)
	rec := &recorder{clk: clk}
	for _, ttl := range linTTLs {
		m := h.openDSN(t, dsn, lock.WithClock(clk.Now), lock.WithTTL(ttl))
		sessions := map[string]*lock.Session{}
		for _, id := range linSessions {
			sessions[id] = mustSession(t, m, id)
		}
		rec.managers = append(rec.managers, m)
		rec.sessions = append(rec.sessions, sessions)
	}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	base := clk.Now().UnixMilli()
	history, unexpected := rec.record(t.Context(), rng)
	if len(unexpected) > 0 {
		t.Fatalf("%d calls failed with an error outside the model (seed %d), the first: %v",
			len(unexpected), seed, errors.Join(unexpected[:min(5, len(unexpected))]...))
	}
	checkCoverage(t, history)
	for _, op := range history {
		if c, r := op.Input.(call), op.Output.(result); c.kind == callPurgeExpired && (r.purged < 0 || r.purged > len(linEntities)) {
			t.Errorf("%s: purged %d rows of %d entities", describeCall(base, c, r), r.purged, len(linEntities))
		}
	}

	model := leaseModel(base)
	res, info := porcupine.CheckOperationsVerbose(model, history, time.Minute)
	if dir := os.Getenv(HistoryHTMLEnv); dir != "" {
		path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".html")
		if err := porcupine.VisualizePath(model, info, path); err != nil {
			t.Errorf("$%s: %v", HistoryHTMLEnv, err)
		} else {
			t.Logf("history written to %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Errorf("the history of %d calls in %d bursts (seed %d) is not linearizable; times are from the start, ✓ marks calls the longest linearization placed:%s",
			len(history), linBursts, seed, explainIllegal(base, history, info))
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide in a minute whether the history of %d calls is linearizable", len(history))
	}
}

// recorder makes the calls of a history and records them.
type recorder struct {
	clk      *testkit.Clock
	managers []*lock.Manager
	sessions []map[string]*lock.Session // per Manager, by id
	seq      atomic.Int64               // orders every call and return in real time
}

// record runs the bursts and returns the history, and the errors of the
// calls that ended outside the model.
func (r *recorder) record(ctx context.Context, rng *rand.Rand) (history []porcupine.Operation, unexpected []error) {
	for burst := range linBursts {
		now := r.clk.Now().UnixMilli()
		calls := make([]call, linCallsPerBurst)
		for i := range calls {
			calls[i] = r.randomCall(rng, burst, now)
		}
		ops := make([]porcupine.Operation, len(calls))
		errs := make([]error, len(calls))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range calls {
			wg.Go(func() {
				<-start
				begin := r.seq.Add(1)
				res, err := r.do(ctx, c)
				ops[i] = porcupine.Operation{ClientId: i, Input: c, Call: begin, Output: res, Return: r.seq.Add(1)}
				if err != nil {
					errs[i] = fmt.Errorf("burst %d: %s %s: %w", burst, c.session, c.kind, err)
				}
			})
		}
		close(start)
		wg.Wait()
		history = append(history, ops...)
		for _, err := range errs {
			if err != nil {
				unexpected = append(unexpected, err)
			}
		}
		r.clk.Advance(time.Duration(rng.IntN(7)*linTick) * time.Millisecond)
	}
	return history, unexpected
}

func (r *recorder) randomCall(rng *rand.Rand, burst int, now int64) call {
	c := call{burst: burst, now: now, manager: rng.IntN(len(r.managers)),
		entity: linEntities[rng.IntN(len(linEntities))]}
	switch w := rng.IntN(100); {
	case w < 40:
		c.kind, c.ttl = callTryAcquire, linTTLs[c.manager].Milliseconds()
	case w < 55:
		c.kind = callRelease
	case w < 67:
		c.kind, c.by = callExtend, int64(1+2*rng.IntN(2))*linTick
	case w < 88:
		c.kind = callHolder
	case w < 95:
		c.kind = callForceRelease
	default:
		c.kind, c.entity = callPurgeExpired, ""
	}
	if c.kind == callTryAcquire || c.kind == callRelease || c.kind == callExtend {
		c.session = linSessions[rng.IntN(len(linSessions))]
	}
	return c
}

// do makes call c. Its error is nil when the result is one the model knows.
func (r *recorder) do(ctx context.Context, c call) (result, error) {
	m, s := r.managers[c.manager], r.sessions[c.manager][c.session]
	switch c.kind {
	case callTryAcquire:
		return leaseResult(s.TryAcquire(ctx, c.entity))
	case callRelease:
		ok, err := s.Release(ctx, c.entity)
		return result{released: ok}, err
	case callExtend:
		return leaseResult(s.Extend(ctx, c.entity, time.Duration(c.by)*time.Millisecond))
	case callHolder:
		return leaseResult(m.Holder(ctx, c.entity))
	case callForceRelease:
		ok, err := m.ForceRelease(ctx, c.entity)
		return result{released: ok}, err
	case callPurgeExpired:
		n, err := m.PurgeExpired(ctx)
		return result{purged: n}, err
	}
	return result{}, fmt.Errorf("unknown call %d", c.kind)
}

func leaseResult(l lock.Lease, err error) (result, error) {
	var held *lock.HeldError
	switch {
	case err == nil:
		return result{lease: valueOf(l)}, nil
	case errors.As(err, &held):
		return result{outcome: outHeld, lease: valueOf(held.Holder)}, nil
	case errors.Is(err, lock.ErrHeld):
		return result{outcome: outHeldChanging}, nil
	case errors.Is(err, lock.ErrNotHeld):
		return result{outcome: outNotHeld}, nil
	}
	return result{}, err
}

func valueOf(l lock.Lease) leaseValue {
	return leaseValue{entity: l.Entity, session: l.SessionID, token: l.Token,
		acquiredAt: l.AcquiredAt.UnixMilli(), expiresAt: l.ExpiresAt.UnixMilli(), reclaimed: l.Reclaimed}
}

// checkCoverage fails t unless the history holds every kind of event the
// model tells apart, so that a pass means something.
func checkCoverage(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	seen := map[string]int{}
	for _, op := range history {
		c, r := op.Input.(call), op.Output.(result)
		var what string
		switch {
		case c.kind == callTryAcquire && r.outcome == outOK && r.lease.reclaimed:
			what = "reclaiming grant"
		case c.kind == callTryAcquire && r.outcome == outOK:
			what = "grant or refresh"
		case r.outcome == outHeld:
			what = "refusal"
		case (c.kind == callRelease || c.kind == callForceRelease) && r.released:
			what = c.kind.String() + " true"
		case c.kind == callPurgeExpired && r.purged > 0:
			what = "purge of a row"
		case c.kind == callExtend || c.kind == callHolder:
			what = fmt.Sprintf("%s %v", c.kind, r.outcome == outOK)
		default:
			continue
		}
		seen[what]++
	}
	for _, want := range []string{"reclaiming grant", "grant or refresh", "refusal", "Release true",
		"ForceRelease true", "purge of a row", "Extend true", "Extend false", "Holder true", "Holder false"} {
		if seen[want] == 0 {
			t.Errorf("the history of %d calls has no %s: %v", len(history), want, seen)
		}
	}
	t.Logf("events in the history: %v", seen)
}
