// Package locktest is the behaviour suite that package lock passes on every
// engine it supports. Run it with a Backend: SQLite for a fresh database file
// per test, Postgres for a fresh schema per test on a PostgreSQL server.
//
//	func TestConformance(t *testing.T) {
//		locktest.Run(t, locktest.SQLite())
//	}
//
// Every test opens its own database, so the tests run in parallel. Time is
// moved with an injected Clock, never slept through.
//
// One test, Linearizable, records concurrent histories of several Managers
// on one database and checks them with porcupine against a sequential
// model of one entity's lease; set HistoryHTMLEnv to keep porcupine's
// visualization of them.
package locktest

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/entitylock/entitylock/lock"
)

// A Backend makes fresh databases of one engine for the suite.
type Backend struct {
	// Name is "sqlite" or "postgres"; it picks the SQL of the few checks
	// the suite makes behind the library's back.
	Name string
	// NewDSN returns a DSN for lock.Open naming a fresh, empty database that
	// tb alone uses; it is removed when tb ends.
	NewDSN func(tb testing.TB) string
	// OpenRaw opens a second handle on the database dsn names, for checks
	// behind the library's back; it is closed when tb ends.
	OpenRaw func(tb testing.TB, dsn string) *sql.DB
}

type suiteTest struct {
	name string
	run  func(t *testing.T, h *harness)
}

// tests is every behaviour test, in the order they are started.
var tests = []suiteTest{
	{"TryAcquireSucceedsOnFirstCall", testTryAcquireSucceedsOnFirstCall},
	{"SameSessionRefreshKeepsTokenAndAcquiredAt", testSameSessionRefreshKeepsTokenAndAcquiredAt},
	{"TryAcquireFailsWhenHeldByDifferentSession", testTryAcquireFailsWhenHeldByDifferentSession},
	{"ExpiredLeaseIsReclaimedByNewSession", testExpiredLeaseIsReclaimedByNewSession},
	{"ReleaseClearsTheLease", testReleaseClearsTheLease},
	{"ReleaseIsNoopForWrongSession", testReleaseIsNoopForWrongSession},
	{"ReleaseAllRemovesAllSessionLeases", testReleaseAllRemovesAllSessionLeases},
	{"Extend", testExtend},
	{"RefreshOfExpiredOwnLeaseIsANewGrant", testRefreshOfExpiredOwnLeaseIsANewGrant},
	{"LocksAndHolderSeeOnlyLiveLeases", testLocksAndHolderSeeOnlyLiveLeases},
	{"PurgeExpiredAndForceRelease", testPurgeExpiredAndForceRelease},
	{"TokenMonotonicity", testTokenMonotonicity},
	{"ExactlyOneWinner", testExactlyOneWinner},
	{"Linearizable", testLinearizable},
	{"ContentionOnSharedPool", testContentionOnSharedPool},
	{"AcquireWaitsForRelease", testAcquireWaitsForRelease},
	{"AcquireStopsWhenCtxEnds", testAcquireStopsWhenCtxEnds},
	{"AcquireStopsWhenManagerCloses", testAcquireStopsWhenManagerCloses},
	{"AcquireNeverWaitsPastHolderExpiry", testAcquireNeverWaitsPastHolderExpiry},
	{"AcquireRetriesRunOut", testAcquireRetriesRunOut},
	{"DoRunsUnderLeaseAndReleases", testDoRunsUnderLeaseAndReleases},
	{"DoReleasesWhenFnPanics", testDoReleasesWhenFnPanics},
	{"DoReleasesWhenCallerCtxIsCancelled", testDoReleasesWhenCallerCtxIsCancelled},
	{"DoRenews", testDoRenews},
	{"DoKeepsRenewingAfterCallerCancels", testDoKeepsRenewingAfterCallerCancels},
	{"DoReportsLossFoundAtRelease", testDoReportsLossFoundAtRelease},
	{"DoCancelsWhenLeaseIsForceReleased", testDoCancelsWhenLeaseIsForceReleased},
	{"DoCancelsBeforeExpiryWhenRenewalsStall", testDoCancelsBeforeExpiryWhenRenewalsStall},
	{"DoCancelsWhenManagerCloses", testDoCancelsWhenManagerCloses},
	{"GuardRejectsStaleHolder", testGuardRejectsStaleHolder},
	{"GuardHoldsOffTakeover", testGuardHoldsOffTakeover},
	{"AcquireAll", testAcquireAll},
	{"AcquireAllWaitsForBlockingEntity", testAcquireAllWaitsForBlockingEntity},
	{"AcquireAllOverlappingSets", testAcquireAllOverlappingSets},
	{"InProcessWaitersAreServedFIFO", testInProcessWaitersAreServedFIFO},
	{"WaiterIsWokenByOtherManagersRelease", testWaiterIsWokenByOtherManagersRelease},
	{"DoLosesAtOnceToOtherManagersRelease", testDoLosesAtOnceToOtherManagersRelease},
	{"SweeperPurgesExpiredRows", testSweeperPurgesExpiredRows},
	{"PurgeInBatchesAndRowCounts", testPurgeInBatchesAndRowCounts},
	{"StatsAndLogs", testStatsAndLogs},
	{"NothingIsLoggedByDefault", testNothingIsLoggedByDefault},
	{"BadInputIsRejectedAndChangesNothing", testBadInputIsRejectedAndChangesNothing},
	{"BoundaryNamesAreAccepted", testBoundaryNamesAreAccepted},
	{"CallsAfterCloseFail", testCallsAfterCloseFail},
	{"ErrorsNameOperationAndEntity", testErrorsNameOperationAndEntity},
}

// Run runs the whole suite against b, each test as a parallel subtest on a
// database of its own.
func Run(t *testing.T, b Backend) {
	t.Helper()
	h := &harness{b: b}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h)
		})
	}
}

// harness gives the tests their databases.
type harness struct{ b Backend }

// dsn names a fresh database for t.
func (h *harness) dsn(t testing.TB) string {
	t.Helper()
	return h.b.NewDSN(t)
}

// open opens a Manager on a fresh database, closed when t ends.
func (h *harness) open(t testing.TB, opts ...lock.Option) *lock.Manager {
	t.Helper()
	return h.openDSN(t, h.dsn(t), opts...)
}

// openDSN opens a Manager on dsn, closed when t ends.
func (h *harness) openDSN(t testing.TB, dsn string, opts ...lock.Option) *lock.Manager {
	t.Helper()
	m, err := lock.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open(%s database): %v", h.b.Name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func (h *harness) raw(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	return h.b.OpenRaw(t, dsn)
}

// blockLeaseWrites makes every write to the lease table wait, while reads
// go on, until the returned function is called: SQLite's write lock, or
// PostgreSQL's EXCLUSIVE table lock, held by a transaction on db.
func (h *harness) blockLeaseWrites(t testing.TB, db *sql.DB) (unblock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	begin := []string{"BEGIN IMMEDIATE"}
	if h.b.Name == "postgres" {
		begin = []string{"BEGIN", "LOCK TABLE entitylock_leases IN EXCLUSIVE MODE"}
	}
	for _, q := range begin {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() {
		conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
	}
}

// Clock is a manually advanced clock for lock.WithClock. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads 2026-03-04 05:06:07 UTC.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestClock() *Clock { return NewClock() }

// fastRetry makes Acquire give up quickly in tests that expect contention.
var fastRetry = lock.RetryPolicy{MaxRetries: 2, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

// MustSession returns m's session id, failing tb if it cannot.
func MustSession(tb testing.TB, m *lock.Manager, id string) *lock.Session {
	tb.Helper()
	s, err := m.Session(id)
	if err != nil {
		tb.Fatalf("Session(%q): %v", id, err)
	}
	return s
}

// MustAcquire takes entity with one TryAcquire, failing tb if it cannot.
func MustAcquire(tb testing.TB, s *lock.Session, entity string) lock.Lease {
	tb.Helper()
	l, err := s.TryAcquire(context.Background(), entity)
	if err != nil {
		tb.Fatalf("%s: TryAcquire(%q): %v", s.ID(), entity, err)
	}
	return l
}

// WaitFor polls cond until it holds, failing tb after 10s. It waits for
// background work (renewals, sweeps, other processes), never for a TTL.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Short names inside the suite.
var (
	mustSession = MustSession
	mustAcquire = MustAcquire
	waitFor     = WaitFor
)
