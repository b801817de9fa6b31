//go:build !unix

package l4

import "net"

// readReplies forwards the backend's datagrams of s to its client until
// the backend socket is closed (net.ErrClosed) or fails. Without raw
// socket reads the buffer stays with the session for its life.
func readReplies(s *udpSession, pc *net.UDPConn, c *counters) error {
	buf := make([]byte, maxDatagram)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return err
		}
		s.touched.Store(true)
		s.replied.Store(true)
		if _, err := pc.WriteToUDPAddrPort(buf[:n], s.client); err != nil {
			c.sendErrors.Add(1)
			continue
		}
		s.out.Add(uint64(n))
	}
}
