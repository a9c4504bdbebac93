package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// errSignal is the cause of the context interruptContext cancels.
var errSignal = errors.New("interrupted by a signal")

var (
	beforeExitMu sync.Mutex
	beforeExit   []func()
)

// atForcedExit registers f to run when a second signal ends the process at
// once (the demo kills its worker processes there); the returned function
// unregisters it.
func atForcedExit(f func()) (remove func()) {
	beforeExitMu.Lock()
	defer beforeExitMu.Unlock()
	beforeExit = append(beforeExit, f)
	i := len(beforeExit) - 1
	return func() {
		beforeExitMu.Lock()
		defer beforeExitMu.Unlock()
		beforeExit[i] = nil
	}
}

// interruptContext returns a context that the first SIGINT or SIGTERM
// cancels with cause errSignal, so a command can stop cleanly and say what
// it did; a second one runs the atForcedExit functions and exits at once
// with status 130, whatever the command is doing.
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel(errSignal)
		case <-done:
			return
		}
		select {
		case <-ch:
			beforeExitMu.Lock()
			for _, f := range beforeExit {
				if f != nil {
					f()
				}
			}
			os.Exit(exitInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
