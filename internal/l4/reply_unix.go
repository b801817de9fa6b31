//go:build unix

package l4

import (
	"net"
	"sync"
	"syscall"
)

// replyBufs holds the buffers reply goroutines read into. A session holds
// one only while datagrams are waiting on its socket, so memory follows
// the traffic rather than the number of sessions: a blocked net.Conn.Read
// would pin 64 KiB per session, 4 GiB for 65536 idle sessions.
var replyBufs = sync.Pool{New: func() any {
	b := make([]byte, maxDatagram)
	return &b
}}

// readReplies forwards the backend's datagrams of s to its client until
// the backend socket is closed (net.ErrClosed) or fails. It waits for
// readability through the runtime poller without a buffer, then drains
// the socket with one pooled buffer.
func readReplies(s *udpSession, pc *net.UDPConn, c *counters) error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	var failed error
	err = rc.Read(func(fd uintptr) bool {
		bp := replyBufs.Get().(*[]byte)
		defer replyBufs.Put(bp)
		for {
			n, err := syscall.Read(int(fd), *bp)
			switch err {
			case nil:
				if !s.touched.Load() {
					s.touched.Store(true)
				}
				if !s.replied.Load() {
					s.replied.Store(true)
				}
				if _, err := pc.WriteToUDPAddrPort((*bp)[:n], s.client); err != nil {
					c.sendErrors.Add(1)
					continue
				}
				s.out.Add(uint64(n))
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait for the next datagram
			case syscall.ECONNREFUSED:
				// An ICMP port unreachable for an earlier datagram: that one
				// was lost, the session may still work.
				c.sendErrors.Add(1)
			default:
				failed = err
				return true
			}
		}
	})
	if failed != nil {
		return failed
	}
	return err
}
