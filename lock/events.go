package lock

import (
	"context"
	"log/slog"
	"time"
)

// granted records a successful acquisition made at nowMs.
func (m *Manager) granted(l Lease, nowMs int64, reclaimed bool) {
	if l.AcquiredAt.UnixMilli() != nowMs { // a refresh keeps AcquiredAt
		m.stats.refreshes.Add(1)
		return
	}
	m.stats.grants.Add(1)
	if reclaimed {
		m.stats.takeovers.Add(1)
		m.cfg.logger.Info("entitylock: reclaimed expired lease",
			slog.String("entity", l.Entity), slog.String("session", l.SessionID),
			slog.Int64("token", l.Token))
	}
}

// refused records an attempt by session that found holder's live lease and
// returns the error that says so.
func (m *Manager) refused(session string, holder Lease) *HeldError {
	m.stats.contended.Add(1)
	m.cfg.logger.Debug("entitylock: entity held",
		slog.String("entity", holder.Entity), slog.String("session", session),
		slog.String("holder", holder.SessionID), slog.Time("until", holder.ExpiresAt))
	return &HeldError{Holder: holder}
}

// released records a removed lease and wakes this Manager's next waiter.
func (m *Manager) released(entity string) {
	m.stats.releases.Add(1)
	m.queues.wake(entity)
}

// lost records a lease that Do found lost.
func (m *Manager) lost(l Lease, cause error) {
	m.stats.lost.Add(1)
	m.cfg.logger.Info("entitylock: lease lost",
		slog.String("entity", l.Entity), slog.String("session", l.SessionID),
		slog.Int64("token", l.Token), slog.Any("cause", cause))
}

// sweep purges expired rows every cfg.sweep until the Manager closes.
func (m *Manager) sweep() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-m.done
		cancel()
	}()
	t := time.NewTicker(m.cfg.sweep)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		n, err := m.PurgeExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			m.cfg.logger.Warn("entitylock: sweep failed", slog.Any("err", err))
		case n > 0:
			m.cfg.logger.Debug("entitylock: swept expired leases", slog.Int("rows", n))
		}
	}
}
