package lock

import "log/slog"

// count applies f to the Manager's counters and, for calls made through a
// Session, to the Session's.
func (m *Manager) count(s *Session, f func(*counters)) {
	f(&m.stats)
	if s != nil {
		f(&s.stats)
	}
}

// granted records a successful acquisition by s made at nowMs.
func (s *Session) granted(l Lease, nowMs int64) {
	if l.AcquiredAt.UnixMilli() != nowMs { // a refresh keeps AcquiredAt
		s.m.count(s, func(c *counters) { c.refreshes.Add(1) })
		return
	}
	s.m.count(s, func(c *counters) { c.grants.Add(1) })
	if l.Reclaimed {
		s.m.count(s, func(c *counters) { c.takeovers.Add(1) })
		s.m.cfg.logger.Info("entitylock: reclaimed expired lease",
			slog.String("entity", l.Entity), slog.String("session", l.SessionID),
			slog.Int64("token", l.Token))
	}
}

// refused records an attempt by s that found holder's live lease and
// returns the error that says so.
func (s *Session) refused(holder Lease) *HeldError {
	s.m.count(s, func(c *counters) { c.contended.Add(1) })
	s.m.cfg.logger.Debug("entitylock: entity held",
		slog.String("entity", holder.Entity), slog.String("session", s.id),
		slog.String("holder", holder.SessionID), slog.Time("until", holder.ExpiresAt))
	return &HeldError{Holder: holder}
}

// released records a lease removed through s (nil: by ForceRelease), tells
// this Manager's Do calls that held it, and wakes its next waiter for entity.
func (m *Manager) released(s *Session, entity string) {
	m.count(s, func(c *counters) { c.releases.Add(1) })
	session := ""
	if s != nil {
		session = s.id
	}
	m.keepers.released(entity, session)
	m.queues.wake(entity)
}

// lost records a lease that Do found lost.
func (s *Session) lost(l Lease, cause error) {
	s.m.count(s, func(c *counters) { c.lost.Add(1) })
	s.m.cfg.logger.Info("entitylock: lease lost",
		slog.String("entity", l.Entity), slog.String("session", l.SessionID),
		slog.Int64("token", l.Token), slog.Any("cause", cause))
}
