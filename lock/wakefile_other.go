//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd) || arm || mips || mipsle

package lock

import "os"

// Here this package makes no wake files: waiting Managers poll
// data_version instead.
func openWakeFile(string, os.FileMode) (*wakeFile, error) { return nil, errNoWakeFiles }

func (w *wakeFile) close() error { return nil }
