package lock

import (
	"syscall"
	"time"
)

// pauseThread blocks the calling goroutine's thread for about d, in a
// nanosleep: on Linux a Go timer under a millisecond waits a whole one
// in an otherwise idle process, and wakes it once more. It reports
// whether it paused.
func pauseThread(d time.Duration) bool {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	syscall.Nanosleep(&ts, nil) // an early wake-up (EINTR) only shortens it
	return true
}
