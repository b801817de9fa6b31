//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// peeker looks at a pooled connection's socket without reading from it.
// Its raw connection and callback are made once per connection, so a
// check allocates nothing.
type peeker struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool
	stale bool
	buf   [1]byte
}

// stale reports whether the backend closed (or wrote unasked on) an idle
// connection, without blocking: a peek at the socket. It costs a system
// call, so only requests that could not be sent again after a failure
// (those with a body) pay for it.
func (u *upConn) stale() bool {
	pk := &u.peek
	if pk.raw == nil {
		sc, ok := u.tc.nc.(syscall.Conn)
		if !ok {
			return false
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		pk.raw = raw
		pk.fn = pk.check
	}
	if err := pk.raw.Read(pk.fn); err != nil {
		return true
	}
	return pk.stale
}

func (pk *peeker) check(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), pk.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Data (nothing was asked) or EOF (n == 0 without error): the
	// connection is not in a state to take a request. EAGAIN: idle and
	// open, as it should be.
	pk.stale = n > 0 || err == nil || !errors.Is(err, syscall.EAGAIN)
	return true
}
