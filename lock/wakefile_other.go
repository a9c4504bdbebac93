//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package lock

import (
	"errors"
	"os"
)

// Here this package makes no wake files: waiting Managers poll
// data_version instead.
var errNoWakeFiles = errors.New("no wake files on this system")

func openWakeFile(string, os.FileMode) (*wakeFile, error) { return nil, errNoWakeFiles }

func (w *wakeFile) close() error { return nil }
