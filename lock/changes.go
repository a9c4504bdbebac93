package lock

// A Manager learns of releases made by other processes through its
// engine's change feed: LISTEN/NOTIFY on PostgreSQL (listen_postgres.go),
// the wake file beside the database on SQLite (watch_sqlite.go). Both report in
// the same two ways, below; a release made through the Manager itself is
// handled where it is made (Manager.released), without either.

// A changeFeed is an engine that can tell a Manager of releases made by
// other processes: an optional capability, found by a type assertion on
// the engine, as database/sql finds a driver.Pinger. followChanges reports
// them to m, through m.releasedElsewhere and m.missedReleases, until m
// closes. Without a feed, waiters learn of such a release when they poll,
// on their backoff, and Do calls at their next renewal.
type changeFeed interface {
	followChanges(m *Manager)
}

// listen starts, once, the goroutine of the engine's change feed, if the
// engine has one. It is started by the first wait or Do, so a Manager that
// does neither runs none. No feed runs on a pool limited to one connection,
// which the feed would take from every other call, nor on a private
// in-memory database, which no other process can change.
func (m *Manager) listen() {
	if m.own != nil && m.own.drop != nil || m.db.Stats().MaxOpenConnections == 1 {
		return
	}
	if m.enter() != nil {
		return
	}
	defer m.exit()
	feed, ok := m.eng.(changeFeed)
	if !ok {
		return
	}
	m.listenOnce.Do(func() {
		m.bg.Go(func() { feed.followChanges(m) })
	})
}

// releasedElsewhere is told that another process may have released entity:
// it wakes the head of the entity's line, which tries at once, and makes
// the Do calls holding entity renew now (only the renewal can tell whether
// their own grant was the one released).
func (m *Manager) releasedElsewhere(entity string) {
	m.queues.wake(entity)
	m.keepers.check(entity)
}

// missedReleases is told that releases may have gone unreported (the feed
// was down): every line's head tries, and every Do call renews, now.
func (m *Manager) missedReleases() {
	m.queues.wakeAll()
	m.keepers.checkAll()
}
