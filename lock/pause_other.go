//go:build !linux

package lock

import "time"

// pauseThread does nothing outside Linux and reports so: the caller waits
// on a Go timer instead.
func pauseThread(time.Duration) bool { return false }
