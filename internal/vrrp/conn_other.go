//go:build !linux

package vrrp

import (
	"errors"
	"fmt"
)

// Listen needs Linux's raw sockets and socket options; elsewhere the
// package's codec and state machine still build and test.
func Listen(opts ConnOptions) (Conn, error) {
	return nil, fmt.Errorf("vrrp: listen on %s: %w", opts.Interface, errors.ErrUnsupported)
}
