//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// setupIdleWait prepares waitRequest's buffer-less wait on a plain TCP
// connection. The raw connection and the callback are made once, so a
// wait allocates nothing.
func (c *clientConn) setupIdleWait() {
	sc, ok := c.tc.nc.(syscall.Conn)
	if !ok {
		return // TLS
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.raw, c.waitFn = raw, c.waitReadable
}

// waitReadable is the RawConn.Read callback of waitRequest. The first call
// peeks: data (or EOF, or an error) already there ends the wait, since the
// poller would not report it again; nothing there makes the poller wait
// for readability, after which the second call ends the wait.
func (c *clientConn) waitReadable(fd uintptr) bool {
	if c.waiting {
		return true
	}
	c.waiting = true
	_, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(err, syscall.EAGAIN)
}
