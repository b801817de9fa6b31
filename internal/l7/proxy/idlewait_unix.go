//go:build unix

package proxy

import (
	"io"
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
	c.tc.usePoller(c.p.poller.Load())
}

// waitReadable is the RawConn.Read callback of waitRequest: it reads what
// has arrived into c.first and hands it to the connection's reader, which
// returns it before reading the socket again. Nothing there (EAGAIN) makes
// the poller wait for readability and call it again.
func (c *clientConn) waitReadable(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.first[:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case n > 0:
			c.tc.pending = c.first[:n]
		case err != nil:
			c.tc.pendingErr = err
		default:
			c.tc.pendingErr = io.EOF
		}
		return true
	}
}

// readRaw is the RawConn.Read callback of timedConn.readPolled: one read.
func (t *timedConn) readRaw(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), t.rbuf)
		if err == syscall.EINTR {
			continue
		}
		t.rn, t.rerr = n, err
		return true
	}
}
