//go:build !unix

package lock

// freeBytes is unknown here: only SQLite's own FULL code reports a full disk.
func freeBytes(string) (uint64, bool) { return 0, false }
