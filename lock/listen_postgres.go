package lock

import (
	"context"
	"database/sql/driver"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// listener holds one connection in LISTEN entitylock, registered as a
// listener for the schema (entitylock_listen), until the Manager
// closes. When a release of an entity in this schema is notified, it wakes
// the head of the entity's line and makes Do calls holding it renew at
// once. When the connection fails it reconnects, with backoff; since
// notifications sent in between are lost, it then wakes every line's head
// and makes every Do renew. Waiters poll on their backoff meanwhile.
func (m *Manager) listener() {
	ctx, cancel := m.lifeContext()
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := m.listenOnConn(ctx)
		if ctx.Err() != nil {
			return
		}
		m.cfg.logger.Warn("entitylock: release notifications interrupted; waiters poll meanwhile",
			slog.Any("err", err), slog.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// listenOnConn listens on one pool connection until it fails or ctx ends.
// The connection is then discarded rather than returned to the pool still
// listening.
func (m *Manager) listenOnConn(ctx context.Context) error {
	return onPgxConn(ctx, m.db, func(c *pgx.Conn) error {
		return errors.Join(m.waitNotifications(ctx, c), driver.ErrBadConn)
	})
}

func (m *Manager) waitNotifications(ctx context.Context, c *pgx.Conn) error {
	var schema string
	if err := c.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "LISTEN entitylock"); err != nil {
		return err
	}
	// Releases notify only while some connection is registered as listening
	// for the schema; registering waits for the releases that found none.
	if _, err := c.Exec(ctx, "SELECT entitylock_listen()"); err != nil {
		return err
	}
	// Releases before LISTEN and registration took effect were missed.
	m.missedReleases()
	prefix := schema + "/"
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if entity, ok := strings.CutPrefix(n.Payload, prefix); ok {
			m.releasedElsewhere(entity)
		}
	}
}
