package lock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Do's local deadline runs on the monotonic clock: a step of the wall
// clock, either way, moves it neither earlier nor later. The test runs a
// 300 ms lease in real time: the monotonic clock cannot be injected.
func TestDoDeadlineIgnoresWallClockSteps(t *testing.T) {
	const ttl, margin = 300 * time.Millisecond, 30 * time.Millisecond
	for _, tc := range []struct {
		name string
		step time.Duration
	}{
		{"wall clock stepped back an hour", -time.Hour},
		{"wall clock stepped forward an hour", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := openFaulty(t, WithTTL(ttl), WithSafetyMargin(margin), WithRenewInterval(50*time.Millisecond))
			// The wall clock as the Manager reads it (no monotonic reading),
			// stepped once fn runs.
			var step atomic.Int64
			m.cfg.now = func() time.Time { return time.Now().Round(0).Add(time.Duration(step.Load())) }
			f.set(&fault{match: "name: Renew", err: errBusy, times: -1}) // renewals stall
			s, _ := m.Session("a")
			var held time.Duration
			start := time.Now() // before the grant's statement begins
			err := s.Do(t.Context(), "e", func(ctx context.Context, l Lease) error {
				step.Store(int64(tc.step))
				select {
				case <-ctx.Done():
					held = time.Since(start)
					return nil
				case <-time.After(5 * time.Second):
					return errors.New("not cancelled within 5s of a 300ms lease")
				}
			})
			if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, errNotRenewed) {
				t.Fatalf("Do = %v; want ErrLeaseLost, not renewed before the local deadline", err)
			}
			// The deadline is TTL − margin − 1 ms after the grant's statement
			// began, which is after start; the wall step must not bring it
			// forward.
			if held < ttl-margin-time.Millisecond {
				t.Errorf("fn cancelled %v after the grant; want about %v", held, ttl-margin)
			}
		})
	}
}

// Renewals refresh the estimate of the server clock's offset (PostgreSQL,
// leases timed by the server), which Manager.Now uses.
func TestRenewalsRefreshServerOffset(t *testing.T) {
	dsn := os.Getenv("ENTITYLOCK_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("PostgreSQL tests skipped: set ENTITYLOCK_POSTGRES_DSN")
	}
	dsn = newPostgresSchema(t, dsn)
	m, err := Open(t.Context(), dsn, WithTTL(10*time.Second), WithRenewInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, _ := m.Session("a")
	err = s.Do(t.Context(), "e", func(ctx context.Context, l Lease) error {
		m.skewMs.Store(time.Hour.Milliseconds()) // a stale estimate
		before := s.Stats().Renewals
		for s.Stats().Renewals < before+2 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if skew := time.Duration(m.skewMs.Load()) * time.Millisecond; skew.Abs() > time.Second {
		t.Errorf("offset estimate after renewals: %v; want within 1s of the server on this machine", skew)
	}
}

// A refresh that keeps a later expiry (the lease was granted with a longer
// TTL) tells nothing of the server's clock: the offset estimate stays as it
// was, not the difference of the two TTLs ahead (PostgreSQL, leases timed
// by the server). Then a grant corrects a stale estimate.
func TestRefreshKeepingExpiryLeavesServerOffset(t *testing.T) {
	dsn := os.Getenv("ENTITYLOCK_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("PostgreSQL tests skipped: set ENTITYLOCK_POSTGRES_DSN")
	}
	dsn = newPostgresSchema(t, dsn)
	open := func(ttl time.Duration) *Manager {
		m, err := Open(t.Context(), dsn, WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	long, short := open(time.Hour), open(time.Second)
	if _, err := sessionOf(t, long, "a").TryAcquire(t.Context(), "e"); err != nil {
		t.Fatal(err)
	}
	const stale = -5 * time.Second
	short.skewMs.Store(stale.Milliseconds())
	s := sessionOf(t, short, "a")
	l, err := s.TryAcquire(t.Context(), "e")
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(l.ExpiresAt); until < 50*time.Minute {
		t.Errorf("refresh through the short-TTL Manager: lease runs %v more; want the hour kept", until)
	}
	if got := time.Duration(short.skewMs.Load()) * time.Millisecond; got != stale {
		t.Errorf("offset estimate after a refresh that kept the expiry: %v; want %v, untouched", got, stale)
	}
	if st := s.Stats(); st.Refreshes != 1 || st.Grants != 0 {
		t.Errorf("stats: %d refreshes, %d grants; want 1 and 0", st.Refreshes, st.Grants)
	}
	if _, err := s.TryAcquire(t.Context(), "f"); err != nil { // a grant
		t.Fatal(err)
	}
	if skew := time.Duration(short.skewMs.Load()) * time.Millisecond; skew == stale || skew.Abs() > time.Second {
		t.Errorf("offset estimate after a grant: %v; want within 1s of the server on this machine", skew)
	}
}

// newPostgresSchema creates a schema for t on the server base names, dropped
// when t ends, and returns base with its search_path set to it.
func newPostgresSchema(t *testing.T, base string) string {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := "entitylock_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP SCHEMA " + name + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}
