//go:build unix

package lock

import "syscall"

// freeBytes reports the space left to unprivileged writers on the file
// system that holds dir.
func freeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
