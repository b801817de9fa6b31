//go:build linux

// Package netns runs code inside a named network namespace (one made by
// `ip netns add`, mounted under /run/netns). The tests that build
// multi-host labs use it to create sockets on the hosts they made.
package netns

import (
	"github.com/fulcrum-lb/fulcrum/internal/setns"
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
	return setns.Do(target, fn)
}
