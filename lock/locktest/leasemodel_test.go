package locktest

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The model itself, on short hand-written histories: what the library
// documents passes, and each way of breaking it is caught.
func TestLeaseModel(t *testing.T) {
	const ttl = 1000
	acquire := func(s string, now int64) call {
		return call{kind: callTryAcquire, entity: "e", session: s, now: now, ttl: ttl}
	}
	release := func(s string) call { return call{kind: callRelease, entity: "e", session: s} }
	extend := func(s string, now, by int64) call {
		return call{kind: callExtend, entity: "e", session: s, now: now, by: by}
	}
	holder := func(now int64) call { return call{kind: callHolder, entity: "e", now: now} }
	force := call{kind: callForceRelease, entity: "e"}
	purge := func(now int64) call { return call{kind: callPurgeExpired, now: now} }
	lease := func(s string, token, at, exp int64, reclaimed bool) leaseValue {
		return leaseValue{entity: "e", session: s, token: token, acquiredAt: at, expiresAt: exp, reclaimed: reclaimed}
	}
	granted := func(l leaseValue) result { return result{lease: l} }
	heldBy := func(l leaseValue) result { return result{outcome: outHeld, lease: l} }
	released := func(ok bool) result { return result{released: ok} }
	notHeld := result{outcome: outNotHeld}
	a1 := lease("a", 1, 0, ttl, false)

	type ev struct {
		c call
		r result
	}
	tests := []struct {
		name  string
		calls []ev // one after another
		legal bool
	}{
		{"grant, refusal, refresh, extend, release", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("b", 10), heldBy(a1)},
			{acquire("a", 500), granted(lease("a", 1, 0, 1500, false))},
			{extend("a", 600, 250), granted(lease("a", 1, 0, 1750, false))},
			{holder(700), granted(lease("a", 1, 0, 1750, false))},
			{release("b"), released(false)},
			{release("a"), released(true)},
			{release("a"), released(false)},
			{holder(700), notHeld},
			{acquire("b", 700), granted(lease("b", 7, 700, 1700, false))},
		}, true},
		{"a refresh never brings an extended expiry forward", []ev{
			{acquire("a", 0), granted(a1)},
			{extend("a", 0, 5000), granted(lease("a", 1, 0, 6000, false))},
			{acquire("a", 100), granted(lease("a", 1, 0, 6000, false))},
		}, true},
		{"a refresh that brings the expiry forward", []ev{
			{acquire("a", 0), granted(a1)},
			{extend("a", 0, 5000), granted(lease("a", 1, 0, 6000, false))},
			{acquire("a", 100), granted(lease("a", 1, 0, 1100, false))},
		}, false},
		{"a refresh pushes the expiry back to now + TTL", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("a", 400), granted(lease("a", 1, 0, 1400, false))},
		}, true},
		{"an expired lease: not live, still released by its holder", []ev{
			{acquire("a", 0), granted(a1)},
			{holder(ttl), notHeld},
			{extend("a", ttl, 100), notHeld},
			{release("a"), released(true)},
		}, true},
		{"an expired lease is reclaimed with a greater token", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("a", ttl), granted(lease("a", 3, ttl, 2*ttl, true))},
		}, true},
		{"a purged lease is gone, and the next grant is not a reclaim", []ev{
			{acquire("a", 0), granted(a1)},
			{purge(ttl), result{purged: 1}},
			{release("a"), released(false)},
			{acquire("b", ttl), granted(lease("b", 2, ttl, 2*ttl, false))},
		}, true},
		{"a purge spares a live lease", []ev{
			{acquire("a", 0), granted(a1)},
			{purge(ttl - 1), result{}},
			{release("a"), released(true)},
		}, true},
		{"force release of an expired lease", []ev{
			{acquire("a", 0), granted(a1)},
			{force, released(true)},
			{force, released(false)},
			{acquire("b", 5), granted(lease("b", 2, 5, 5+ttl, false))},
		}, true},
		{"a grant that steals a live lease", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("b", 10), granted(lease("b", 2, 10, 10+ttl, false))},
		}, false},
		{"a takeover that reuses the token", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("b", ttl), granted(lease("b", 1, ttl, 2*ttl, true))},
		}, false},
		{"a token lower after a purge", []ev{
			{acquire("a", 0), granted(lease("a", 5, 0, ttl, false))},
			{purge(ttl), result{purged: 1}},
			{acquire("b", ttl), granted(lease("b", 4, ttl, 2*ttl, false))},
		}, false},
		{"a release by a non-holder", []ev{
			{acquire("a", 0), granted(a1)},
			{release("b"), released(true)},
		}, false},
		{"a refusal naming the caller", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("a", 10), heldBy(a1)},
		}, false},
		{"a refusal of a free entity", []ev{
			{acquire("a", 0), result{outcome: outHeldChanging}},
		}, false},
		{"a refresh with a new token", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("a", 10), granted(lease("a", 2, 10, 10+ttl, false))},
		}, false},
		{"an expired lease extended", []ev{
			{acquire("a", 0), granted(a1)},
			{extend("a", ttl, 100), granted(lease("a", 1, 0, ttl+100, false))},
		}, false},
		{"an expired lease reported live", []ev{
			{acquire("a", 0), granted(a1)},
			{holder(ttl), granted(a1)},
		}, false},
		{"a reclaim not flagged", []ev{
			{acquire("a", 0), granted(a1)},
			{acquire("b", ttl), granted(lease("b", 2, ttl, 2*ttl, false))},
		}, false},
		{"a purge of a live lease", []ev{
			{acquire("a", 0), granted(a1)},
			{purge(10), result{purged: 1}},
			{release("a"), released(false)},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var history []porcupine.Operation
			for i, e := range tt.calls {
				history = append(history, porcupine.Operation{Input: e.c, Output: e.r, Call: int64(2 * i), Return: int64(2*i + 1)})
			}
			if got := porcupine.CheckOperations(leaseModel(0), history); got != tt.legal {
				t.Errorf("linearizable = %v, want %v", got, tt.legal)
			}
		})
	}

	// Two refusals that overlap a release: each may fall on either side.
	t.Run("concurrent calls take any order", func(t *testing.T) {
		op := func(c call, r result, from, to int64) porcupine.Operation {
			return porcupine.Operation{Input: c, Output: r, Call: from, Return: to}
		}
		history := []porcupine.Operation{
			op(acquire("a", 0), granted(a1), 0, 1),
			op(acquire("b", 10), result{outcome: outHeldChanging}, 2, 9),
			op(release("a"), released(true), 3, 4),
			op(acquire("c", 10), granted(lease("c", 2, 10, 10+ttl, false)), 5, 8),
			op(acquire("b", 10), heldBy(a1), 2, 6),
		}
		if !porcupine.CheckOperations(leaseModel(0), history) {
			t.Error("not linearizable, want linearizable")
		}
	})

	// The summary of an illegal history names the entity, the burst and the
	// state before it.
	t.Run("explained", func(t *testing.T) {
		a, b := acquire("a", 0), acquire("b", 10)
		b.burst = 1
		history := []porcupine.Operation{
			{Input: a, Output: granted(a1), Call: 0, Return: 1},
			{Input: b, Output: granted(lease("b", 2, 10, 10+ttl, false)), Call: 2, Return: 3},
		}
		res, info := porcupine.CheckOperationsVerbose(leaseModel(0), history, 0)
		if res != porcupine.Illegal {
			t.Fatalf("result %v, want Illegal", res)
		}
		got := explainIllegal(0, history, info)
		for _, want := range []string{"e: no order of burst 1", "held by a #1 [+0, +1000)ms", "b.TryAcquire(e) @+10ms → b #2"} {
			if !strings.Contains(got, want) {
				t.Errorf("explanation lacks %q:%s", want, got)
			}
		}
	})
}
