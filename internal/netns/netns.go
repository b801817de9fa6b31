//go:build linux

// Package netns runs code inside a network namespace: a named one (made
// by `ip netns add`, mounted under /run/netns), as the tests that build
// multi-host labs do to create sockets on their hosts, or one held open
// (the XDP loader detaches its program from the namespace it attached it
// in, whichever thread closes it).
package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the namespace named ns. Sockets
// fn creates stay in ns for good, whichever thread uses them later.
func Do(ns string, fn func() error) error {
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	return DoFD(target, fn)
}

// Current opens the calling thread's network namespace, for DoFD later
// (the caller closes it). Called from a goroutine not locked to its
// thread, it is the process's namespace.
func Current() (int, error) {
	return unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// DoFD is Do with the namespace given by an open descriptor of it (from
// Current, or of /run/netns/NAME).
func DoFD(target int, fn func() error) error {
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
