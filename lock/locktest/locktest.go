package locktest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// A Backend is one engine as the suite sees it: how to make its databases,
// the few engine-specific facts its failure tests need, and what it
// guarantees beyond what every engine must. Every func field is required.
// The suite opens the databases with lock.Open, lock.New and lock.OpenDB,
// which find the engine by the DSN.
type Backend struct {
	// Name names the engine in subtest names and messages; the suite never
	// branches on it.
	Name string

	// NewDSN returns a DSN for lock.Open naming a fresh, empty database
	// that tb alone uses; it is removed when tb ends.
	NewDSN func(tb testing.TB) string

	// LockWrites begins, on conn, a transaction that makes every write to
	// the lease table wait, while reads go on, until the transaction is
	// rolled back. It returns once the lock is held.
	LockWrites func(ctx context.Context, conn *sql.Conn) error

	// WithLockWait returns a NewDSN DSN changed so that a statement that
	// waits for a lock another transaction holds gives up after about d.
	WithLockWait func(tb testing.TB, dsn string, d time.Duration) string

	// IsLockTimeout reports whether err is the engine's report that a lock
	// wait bounded by WithLockWait ran out.
	IsLockTimeout func(err error) bool

	// IsReadOnly reports whether err is the engine's refusal to write
	// through a handle lock.OpenDB opened with lock.ReadOnly.
	IsReadOnly func(err error) bool

	// ReleaseNotifications is set if every release, by any Manager on the
	// database, is pushed at once to every other Manager on it, whether or
	// not they have waiters (PostgreSQL's LISTEN/NOTIFY): a Do whose lease
	// another Manager releases is cancelled without waiting for its next
	// renewal. Without it, a Manager may learn of another Manager's release
	// only while it has waiters, or at its next renewal.
	ReleaseNotifications bool
}

// missing names the func fields b lacks, in the order they are declared.
func (b Backend) missing() []string {
	var out []string
	for _, f := range []struct {
		name string
		nil  bool
	}{
		{"NewDSN", b.NewDSN == nil}, {"LockWrites", b.LockWrites == nil}, {"WithLockWait", b.WithLockWait == nil},
		{"IsLockTimeout", b.IsLockTimeout == nil}, {"IsReadOnly", b.IsReadOnly == nil},
	} {
		if f.nil {
			out = append(out, f.name)
		}
	}
	return out
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
	{"RefreshNeverBringsExpiryForward", testRefreshNeverBringsExpiryForward},
	{"RefreshAfterClockStepsBack", testRefreshAfterClockStepsBack},
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
	{"EngineFailuresChangeNothing", testEngineFailuresChangeNothing},
	{"OpenRefusesUnusableSchema", testOpenRefusesUnusableSchema},
	{"BoundaryNamesAreAccepted", testBoundaryNamesAreAccepted},
	{"CallsAfterCloseFail", testCallsAfterCloseFail},
	{"ErrorsNameOperationAndEntity", testErrorsNameOperationAndEntity},
}

// Run runs the whole suite against b, each test as a parallel subtest on a
// database of its own. A Backend without one of its func fields fails t.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if missing := b.missing(); len(missing) > 0 {
		t.Fatalf("locktest: Backend %q lacks %s", b.Name, strings.Join(missing, ", "))
	}
	h := &harness{b: b}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, h)
		})
	}
}
