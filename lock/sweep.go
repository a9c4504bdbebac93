package lock

import (
	"log/slog"
	"time"
)

// sweep purges expired and released rows every cfg.sweep until the Manager
// closes.
func (m *Manager) sweep() {
	ctx, cancel := m.lifeContext()
	defer cancel()
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
