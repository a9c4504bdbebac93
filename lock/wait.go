package lock

import (
	"context"
	"time"
)

// sleep waits d, or until ctx ends or the Manager closes, whichever is
// first, and says which.
func (m *Manager) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return ErrClosed
	}
}
