//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// stale reports whether the backend closed (or wrote unasked on) an idle
// connection, without blocking: a peek at the socket. It costs a system
// call, so only requests that could not be sent again after a failure
// (those with a body) pay for it.
func (u *upConn) stale() bool {
	sc, ok := u.tc.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var buf [1]byte
	stale := false
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Data (nothing was asked) or EOF (n == 0 without error): the
		// connection is not in a state to take a request. EAGAIN: idle
		// and open, as it should be.
		stale = n > 0 || err == nil || !errors.Is(err, syscall.EAGAIN)
		return true
	})
	return stale || err != nil
}
