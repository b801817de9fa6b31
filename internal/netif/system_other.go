//go:build !linux

package netif

import (
	"errors"
	"fmt"
)

// newSystem needs Linux's rtnetlink and packet sockets; elsewhere the
// package builds, so that its callers do, and New says why it cannot work.
func newSystem(string) (system, error) {
	return nil, errors.ErrUnsupported
}

// LinkUp needs Linux's rtnetlink.
func LinkUp(name string) (bool, error) {
	return false, fmt.Errorf("netif: interface %s: %w", name, errors.ErrUnsupported)
}
