//go:build !unix

package main

import "syscall"

// workerAttr: without process groups, a Ctrl-C at the console reaches the
// workers too, and the demo's own interrupt comes second to them.
func workerAttr() *syscall.SysProcAttr { return nil }
