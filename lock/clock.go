package lock

import "time"

// A Manager reads three clocks, each for one purpose:
//
//   - the local clock, localNow: WithClock's clock, else time.Now. It stamps
//     the start of each call whose answer carries the server's reading.
//   - the lease clock, leaseNow: the clock leases are timed by. It is the
//     local clock, unless the database times leases (serverTimed:
//     PostgreSQL without WithClock); then it is the server's clock,
//     estimated as the local clock plus the offset seen in the last call
//     that read the server's (observe). Statements get it as stmtNow.
//   - the deadline clock, deadlineNow: Do's local deadlines. It is
//     WithClock's clock, else time.Now, whose monotonic reading makes the
//     deadlines immune to steps of the wall clock.
//
// Without WithClock the three are time.Now, corrected by the offset for
// the lease clock; tests replace the local clock alone (WithLocalClock) to
// tell them apart.

// localNow reads the local clock.
func (m *Manager) localNow() time.Time { return m.cfg.now() }

// leaseNow reads the lease clock.
func (m *Manager) leaseNow() time.Time {
	return m.localNow().Add(time.Duration(m.skewMs.Load()) * time.Millisecond)
}

// stmtNow is the lease clock's reading to pass to a statement: the local
// clock's, or serverClock when the database times leases, so that the
// statement reads the server's clock itself.
func (m *Manager) stmtNow() clockReading {
	if m.serverTimed {
		return serverClock
	}
	return readingAt(m.localNow().UnixMilli())
}

// observe takes in the server's clock reading serverMs, returned by a call
// that began at before on the local clock. The offset it keeps errs towards
// a server clock ahead of ours, which makes Do's deadlines early, not late.
func (m *Manager) observe(before time.Time, serverMs int64) {
	if m.serverTimed && serverMs != unknownNow {
		m.skewMs.Store(serverMs - before.UnixMilli())
	}
}

// deadlineNow reads the deadline clock.
func (m *Manager) deadlineNow() time.Time {
	if m.cfg.clockSet {
		return m.cfg.now()
	}
	return time.Now()
}

// Now returns the time leases are measured by, truncated to milliseconds as
// lease times are: the Manager's clock (WithClock, or time.Now) on SQLite or
// with WithClock; on PostgreSQL without it, the local clock corrected by the
// offset of the server's clock seen in the last call that read it and
// returned its reading (a refresh does not).
func (m *Manager) Now() time.Time { return time.UnixMilli(m.leaseNow().UnixMilli()).UTC() }
