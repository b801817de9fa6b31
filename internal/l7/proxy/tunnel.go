package proxy

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// tunnel relays bytes both ways after a 101 until both directions end,
// and returns the bytes moved client→backend and backend→client. A
// direction waiting longer than idle while the other has been silent too
// ends the tunnel.
func tunnel(c *clientConn, u *upConn, idle time.Duration) (in, out int64) {
	c.tc.clearDeadlines()
	u.tc.clearDeadlines()
	var last activity
	last.touch()
	done := make(chan int64, 1)
	go func() { done <- pump(u.tc.nc, c.tc.nc, c.br, idle, &last) }()
	out = pump(c.tc.nc, u.tc.nc, u.br, idle, &last)
	in = <-done
	return in, out
}

// activity is the time of a tunnel's last progress in either direction.
type activity struct{ at atomic.Int64 }

func (a *activity) touch()               { a.at.Store(time.Now().UnixNano()) }
func (a *activity) since() time.Duration { return time.Duration(time.Now().UnixNano() - a.at.Load()) }

// pump copies src (whose first bytes may wait in br) to dst until EOF,
// then half-closes dst so its peer sees the end while the other direction
// goes on. Any other ending closes both sockets, which ends the other
// direction too. A read timing out while the other direction made
// progress within idle waits again.
func pump(dst, src net.Conn, br *bufio.Reader, idle time.Duration, last *activity) int64 {
	bufp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bufp)
	buf := *bufp
	var n int64
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		k, err := br.Read(buf)
		if k > 0 {
			last.touch()
			if idle > 0 {
				dst.SetWriteDeadline(time.Now().Add(idle))
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
			n += int64(k)
		}
		if err != nil {
			if isTimeout(err) && last.since() < idle {
				continue
			}
			if err == io.EOF {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return n
				}
			}
			break
		}
	}
	dst.Close()
	src.Close()
	return n
}
