//go:build linux

// Package setns runs code on an OS thread switched into a network
// namespace given by an open descriptor of it. internal/netns (named
// namespaces, for test labs) builds on it; the XDP loader uses it to
// detach its program in the namespace it attached it in, whichever thread
// closes it.
package setns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Current opens the calling thread's network namespace (the caller
// closes it). From a goroutine not locked to its thread it is the
// process's namespace.
func Current() (int, error) {
	return unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// Do runs fn on an OS thread switched into the namespace target (a
// descriptor from Current, or of /run/netns/NAME). Sockets fn creates stay
// in that namespace for good, whichever thread uses them later.
func Do(target int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := Current()
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		// A thread that cannot go back stays locked, and so exits with
		// this goroutine instead of serving others in the wrong namespace.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
