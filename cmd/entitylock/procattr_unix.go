//go:build unix

package main

import "syscall"

// workerAttr puts a demo worker in a process group of its own, so that a
// Ctrl-C at the terminal reaches the demo only, which passes it on once.
func workerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
