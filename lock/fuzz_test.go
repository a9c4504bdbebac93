package lock_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entitylock/entitylock/lock"
)

// model is the lock semantics in a few lines, to check the real thing
// against: one row per entity, kept with expires 0 when released; tokens per
// entity, new rows starting above a floor that purges raise; times in ms.
type model struct {
	now, ttl, fence int64
	rows            map[string]modelRow
	// With oneToken (SQLite's tokens, checked exactly), AcquireAll grants
	// every entity the token guess + 1 when each is new or released with a
	// lower token and guess + 1 is above the fence; guess is the largest
	// token AcquireAll has returned (lock/engine_sqlite.go).
	oneToken bool
	guess    int64
}

type modelRow struct {
	session                  string
	token, acquired, expires int64
	reclaimed                bool
}

func (m *model) lease(e string) lock.Lease {
	r := m.rows[e]
	return lock.Lease{Entity: e, SessionID: r.session, Token: r.token,
		AcquiredAt: time.UnixMilli(r.acquired).UTC(), ExpiresAt: time.UnixMilli(r.expires).UTC(), Reclaimed: r.reclaimed}
}

func (m *model) live(e string) bool {
	r, ok := m.rows[e]
	return ok && r.expires > m.now
}

func (m *model) tryAcquire(s, e string) (lock.Lease, error) {
	r, ok := m.rows[e]
	switch {
	case m.live(e) && r.session != s:
		return lock.Lease{}, &lock.HeldError{Holder: m.lease(e)}
	case m.live(e): // refresh: never brings the expiry forward
		r.expires = max(r.expires, m.now+m.ttl)
	case ok: // released or expired: the next token of this entity
		r = modelRow{session: s, token: r.token + 1, acquired: m.now, expires: m.now + m.ttl, reclaimed: r.expires > 0}
	default:
		r = modelRow{session: s, token: m.fence + 1, acquired: m.now, expires: m.now + m.ttl}
	}
	m.rows[e] = r
	return m.lease(e), nil
}

// acquireAll is tryAcquire on every one of names (sorted), or on none when
// any is held by another session.
func (m *model) acquireAll(s string, names []string) ([]lock.Lease, error) {
	for _, e := range names {
		if m.live(e) && m.rows[e].session != s {
			return nil, &lock.HeldError{Holder: m.lease(e)}
		}
	}
	out := make([]lock.Lease, len(names))
	if t := m.guess + 1; m.oneToken && t > m.fence && !slices.ContainsFunc(names, func(e string) bool {
		r, ok := m.rows[e]
		return ok && (r.expires != 0 || r.token >= t)
	}) {
		for i, e := range names {
			m.rows[e] = modelRow{session: s, token: t, acquired: m.now, expires: m.now + m.ttl}
			out[i] = m.lease(e)
		}
		m.guess = t
		return out, nil
	}
	for i, e := range names {
		out[i], _ = m.tryAcquire(s, e)
		m.guess = max(m.guess, out[i].Token)
	}
	return out, nil
}

func (m *model) extend(s, e string, by int64) (lock.Lease, error) {
	r := m.rows[e]
	if !m.live(e) || r.session != s {
		return lock.Lease{}, lock.ErrNotHeld
	}
	r.expires += by
	m.rows[e] = r
	return m.lease(e), nil
}

// release marks the unreleased rows that match as released; it returns how
// many.
func (m *model) release(match func(string, modelRow) bool) int {
	n := 0
	for e, r := range m.rows {
		if r.expires != 0 && match(e, r) {
			r.expires = 0
			m.rows[e] = r
			n++
		}
	}
	return n
}

// purge deletes released and expired rows, raising the fence floor.
func (m *model) purge() int {
	n := 0
	for e, r := range m.rows {
		if r.expires <= m.now {
			m.fence = max(m.fence, r.token)
			delete(m.rows, e)
			n++
		}
	}
	return n
}

func (m *model) locks(session string) []lock.Lease {
	out := []lock.Lease{}
	for _, e := range slices.Sorted(maps.Keys(m.rows)) {
		if m.live(e) && (session == "" || m.rows[e].session == session) {
			out = append(out, m.lease(e))
		}
	}
	return out
}

// lockOpsSeeds start the fuzzer, and the PostgreSQL model check.
var lockOpsSeeds = [][]byte{
	[]byte{0, 0, 0, 0, 0, 1, 0, 0, 6, 0, 0, 80, 0, 1, 0, 0},                        // grant, contend, expire, take over
	[]byte{0, 0, 1, 0, 1, 0, 1, 5, 6, 0, 0, 60, 1, 0, 1, 9, 0, 2, 1, 0},            // extend pushes expiry past a takeover
	[]byte{0, 1, 2, 0, 4, 0, 2, 0, 0, 2, 2, 0, 5, 0, 0, 0, 3, 2, 0, 0},             // force release, re-grant, purge, release all
	[]byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 3, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0},    // release all, holder, locks
	[]byte{9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0},             // acquire all after a grant reached its guess
	[]byte{9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0}, // the same after a purge raised the fence to it
}

// FuzzLockOps decodes its input, four bytes an operation, into calls by
// three sessions on three entities, with the clock moved by the input, and
// checks every result against the model.
func FuzzLockOps(f *testing.F) {
	for _, ops := range lockOpsSeeds {
		f.Add(ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		var m *lock.Manager
		checkLockOps(t, ops, nil, func(opts ...lock.Option) *lock.Manager {
			var err error
			if m, err = lock.Open(t.Context(), ":memory:", opts...); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return m
		})
		// The owners table mirrors the leases' holders exactly.
		var consistent bool
		err := m.DB().QueryRowContext(t.Context(), `SELECT
			(SELECT count(*) FROM entitylock_leases) = (SELECT count(*) FROM entitylock_owners)
			AND NOT EXISTS (SELECT 1 FROM entitylock_leases AS l WHERE NOT EXISTS (
				SELECT 1 FROM entitylock_owners AS o WHERE o.session_id = l.session_id AND o.entity = l.entity))`).Scan(&consistent)
		if err != nil || !consistent {
			t.Fatalf("entitylock_owners out of step with entitylock_leases (%v)", err)
		}
	})
}

// checkLockOps decodes ops, four bytes an operation, into calls by three
// sessions on three entities of a Manager that open makes, with the clock
// moved by the input, and checks every result against the model. With tm,
// tokens are compared through it (PostgreSQL's come from one sequence, so
// only their order per entity is the model's); without, exactly.
func checkLockOps(t *testing.T, ops []byte, tm *tokenMap, open func(...lock.Option) *lock.Manager) {
	t.Helper()
	if len(ops) > 4*64 {
		ops = ops[:4*64]
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	md := &model{now: start, ttl: 1000, rows: map[string]modelRow{}, oneToken: tm == nil}
	m := open(lock.WithTTL(time.Second), lock.WithRetry(lock.RetryPolicy{}),
		lock.WithClock(func() time.Time { return time.UnixMilli(md.now) }))
	sessions := make([]*lock.Session, 3)
	for i := range sessions {
		sessions[i], _ = m.Session(fmt.Sprintf("s%d", i))
	}
	ctx := t.Context()
	for i := 0; i+3 < len(ops); i += 4 {
		op, si, e, arg := ops[i]%10, int(ops[i+1]%3), fmt.Sprintf("e%d", ops[i+2]%3), int64(ops[i+3])
		s, sid := sessions[si], fmt.Sprintf("s%d", si)
		check := func(name string, got, want any, gotErr, wantErr error) {
			t.Helper()
			var gh, wh *lock.HeldError
			if tm != nil {
				want = tm.translate(t, want, got)
				if errors.As(wantErr, &wh) && errors.As(gotErr, &gh) {
					wantErr = &lock.HeldError{Holder: tm.translate(t, wh.Holder, gh.Holder).(lock.Lease)}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("op %d %s(%s, %s) at %d (-model +real):\n%s", i/4, name, sid, e, md.now-start, diff)
			}
			switch {
			case errors.As(wantErr, &wh):
				if !errors.As(gotErr, &gh) || gh.Holder != wh.Holder {
					t.Fatalf("op %d %s(%s, %s): got err %v, want %v", i/4, name, sid, e, gotErr, wantErr)
				}
			case !errors.Is(gotErr, wantErr):
				t.Fatalf("op %d %s(%s, %s): got err %v, want %v", i/4, name, sid, e, gotErr, wantErr)
			}
		}
		switch op {
		case 0:
			got, err := s.TryAcquire(ctx, e)
			want, werr := md.tryAcquire(sid, e)
			check("TryAcquire", got, want, err, werr)
		case 1:
			by := (arg + 1) * 7
			got, err := s.Extend(ctx, e, time.Duration(by)*time.Millisecond)
			want, werr := md.extend(sid, e, by)
			check("Extend", got, want, err, werr)
		case 2:
			got, err := s.Release(ctx, e)
			want := md.release(func(k string, r modelRow) bool { return k == e && r.session == sid }) == 1
			check("Release", got, want, err, nil)
		case 3:
			got, err := s.ReleaseAll(ctx)
			want := md.release(func(_ string, r modelRow) bool { return r.session == sid })
			check("ReleaseAll", got, want, err, nil)
		case 4:
			got, err := m.ForceRelease(ctx, e)
			want := md.release(func(k string, _ modelRow) bool { return k == e }) == 1
			check("ForceRelease", got, want, err, nil)
		case 5:
			got, err := m.PurgeExpired(ctx)
			want := md.purge()
			check("PurgeExpired", got, want, err, nil)
		case 6:
			md.now += arg * 13 // up to 3.3s: past the 1s TTL
		case 7:
			got, err := m.Holder(ctx, e)
			var want lock.Lease
			var werr error
			if md.live(e) {
				want = md.lease(e)
			} else {
				werr = lock.ErrNotHeld
			}
			check("Holder", got, want, err, werr)
		case 8:
			got, err := m.Locks(ctx)
			check("Locks", got, md.locks(""), err, nil)
			got, err = s.Locks(ctx)
			check("Session.Locks", got, md.locks(sid), err, nil)
		case 9:
			var names []string
			for k := range 3 {
				if arg&(1<<k) != 0 || k == int(ops[i+2]%3) {
					names = append(names, fmt.Sprintf("e%d", k))
				}
			}
			got, err := s.AcquireAll(ctx, names...)
			want, werr := md.acquireAll(sid, names)
			if werr != nil {
				got = nil
			}
			check("AcquireAll", got, want, err, werr)
		}
	}
}

// tokenMap translates the model's tokens, per entity, to the real ones the
// first time each is seen, checking that every new real token of an entity
// exceeds all its earlier ones.
type tokenMap struct {
	real map[string]map[int64]int64 // entity → model token → real token
	last map[string]int64           // entity → greatest real token seen
}

func newTokenMap() *tokenMap {
	return &tokenMap{real: map[string]map[int64]int64{}, last: map[string]int64{}}
}

// translate returns want (a Lease or a []Lease) with the model's tokens
// replaced by the real ones, learning new ones from got.
func (tm *tokenMap) translate(t *testing.T, want, got any) any {
	t.Helper()
	switch w := want.(type) {
	case lock.Lease:
		g, _ := got.(lock.Lease)
		return tm.lease(t, w, g)
	case []lock.Lease:
		g, _ := got.([]lock.Lease)
		out := slices.Clone(w)
		for i := range out {
			var gi lock.Lease
			if i < len(g) {
				gi = g[i]
			}
			out[i] = tm.lease(t, out[i], gi)
		}
		return out
	}
	return want
}

func (tm *tokenMap) lease(t *testing.T, want, got lock.Lease) lock.Lease {
	t.Helper()
	if want.Token == 0 {
		return want
	}
	byModel := tm.real[want.Entity]
	if byModel == nil {
		byModel = map[int64]int64{}
		tm.real[want.Entity] = byModel
	}
	if real, ok := byModel[want.Token]; ok {
		want.Token = real
		return want
	}
	if got.Entity != want.Entity || got.Token == 0 {
		return want // the comparison reports the mismatch
	}
	if got.Token <= tm.last[want.Entity] {
		t.Fatalf("%s: new grant has token %d, not above the earlier %d", want.Entity, got.Token, tm.last[want.Entity])
	}
	byModel[want.Token] = got.Token
	tm.last[want.Entity] = got.Token
	want.Token = got.Token
	return want
}
