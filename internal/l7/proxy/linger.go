package proxy

import (
	"crypto/tls"
	"net"
	"time"
)

// Bounds of the drain after an error answer (lingerClose).
const (
	lingerTime  = 5 * time.Second // the whole drain
	lingerQuiet = time.Second     // silence from the client that ends it
	lingerBytes = 1 << 20         // bytes read and thrown away at most
)

// lingerClose ends a connection whose client may still be sending a
// request the proxy answered without reading it all (a refused head, a
// body left unread after an error or an early answer from the backend).
// Closing a socket with unread bytes resets the connection: the client's
// next write fails and, like curl, it may never read the answer. So the
// proxy half-closes (the answer was flushed: the client reads it and then
// the end) and reads and throws away what comes, until the client closes,
// stays silent for lingerQuiet, or lingerTime or lingerBytes is reached;
// the caller closes afterwards. Shutdown may close it meanwhile, as a
// connection idle between requests: nothing is left to serve on it; once
// Shutdown has begun it closes at once.
//
// RFC 9112 §9.6 asks for this "lingering close"; nginx (lingering_close)
// and Apache do the same.
func (c *clientConn) lingerClose() {
	if !c.state.CompareAndSwap(connActive, connIdle) || c.p.conns.Closing() {
		return // closed by Shutdown already, or Shutdown is waiting
	}
	c.tc.stopPolling()
	c.nc.SetWriteDeadline(time.Now().Add(lingerQuiet))
	if tc, ok := c.tc.nc.(*tls.Conn); ok {
		tc.CloseWrite() // close_notify; the socket's FIN comes next
	}
	tcp, ok := c.nc.(*net.TCPConn)
	if !ok || tcp.CloseWrite() != nil {
		return
	}
	bufp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bufp)
	end := time.Now().Add(lingerTime)
	for n := 0; n < lingerBytes; {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		at := now.Add(lingerQuiet)
		if at.After(end) {
			at = end
		}
		tcp.SetReadDeadline(at)
		k, err := tcp.Read(*bufp)
		n += k
		if err != nil {
			return
		}
	}
}
