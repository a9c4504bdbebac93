// Package locktest is the behaviour suite that package lock passes on every
// engine it supports: the contract an engine must meet.
//
//	func TestConformanceSQLite(t *testing.T) { locktest.Run(t, locktest.SQLite()) }
//
// # Running the suite on an engine
//
// An engine is run through a [Backend], which tells the suite how to make
// its databases, the few engine-specific facts its failure tests need, and
// what the engine guarantees beyond what every engine must; the suite never
// asks which engine it runs on. It opens every database through lock.Open,
// lock.New and lock.OpenDB, so an engine must first be one of package
// lock's engines (lock/engines.go). SQLite and Postgres are the Backends of
// the two engines lock has. A third engine fills in a Backend:
//
//   - NewDSN: a DSN lock.Open accepts, naming a fresh, empty database for
//     one test, removed when the test ends. The tests run in parallel.
//   - LockWrites: how another transaction makes every write to the lease
//     table wait while reads go on (a write lock, a table lock).
//   - WithLockWait, IsLockTimeout, IsReadOnly: how a DSN bounds the time a
//     statement waits for such a lock, and how the engine reports that the
//     wait ran out, or a write through a read-only handle (lock.ReadOnly).
//     The library passes these errors on; the suite checks that they reach
//     the caller and that the call changed nothing.
//   - The capability flags (ReleaseNotifications): set one only if the
//     engine gives the guarantee its doc states; the tests that depend on
//     it are skipped, saying why, on an engine without it.
//
// Then
//
//	func TestConformanceMyEngine(t *testing.T) { locktest.Run(t, myEngineBackend) }
//
// The suite's own SQL (reading the lease and fence tables, the schema
// migrations table, a documents table for Guard) is the subset that SQLite
// and PostgreSQL share, with $1 placeholders.
//
// Time is moved with an injected clock, never slept through. One test,
// Linearizable, records concurrent histories of several Managers on one
// database and checks them with porcupine against a sequential model of one
// entity's lease; set HistoryHTMLEnv to keep porcupine's visualization of
// them.
package locktest
