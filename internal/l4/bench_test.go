package l4

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTCPConnect measures a short connection through the proxy:
// connect, a 4-byte request echoed back, close. Allocations are the whole
// process's, client and backend included.
func BenchmarkTCPConnect(b *testing.B) {
	be := startBackend(b, "tcp4", echo)
	svc, _ := newService(b, spec(), nil, be.addr)
	_, addr := startTCP(b, "tcp4", svc)
	req, resp := []byte("ping"), make([]byte, 4)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
		// An RST instead of a FIN leaves no TIME_WAIT socket behind, so a
		// long run does not run out of loopback ports.
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// BenchmarkTCPThroughput measures one long upload through the proxy.
func BenchmarkTCPThroughput(b *testing.B) {
	for _, tt := range []struct {
		name string
		idle time.Duration
	}{{"no idle timeout", 0}, {"idle timeout", time.Minute}} {
		b.Run(tt.name, func(b *testing.B) {
			received := make(chan int64, 1)
			be := startBackend(b, "tcp4", func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				received <- n
			})
			s := spec()
			s.IdleTimeout = tt.idle
			svc, _ := newService(b, s, nil, be.addr)
			_, addr := startTCP(b, "tcp4", svc)
			c := dial(b, addr)
			c.SetDeadline(time.Time{})
			chunk := make([]byte, 256<<10)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			var sent int64
			for b.Loop() {
				n, err := c.Write(chunk)
				if err != nil {
					b.Fatal(err)
				}
				sent += int64(n)
			}
			c.CloseWrite()
			if got := <-received; got != sent {
				b.Fatalf("backend got %d bytes, want %d", got, sent)
			}
		})
	}
}

// BenchmarkUDPRoundTrip measures one datagram to a backend and its reply
// back through an established session.
func BenchmarkUDPRoundTrip(b *testing.B) {
	svc, _ := newService(b, udpSpec(), nil, startUDPBackend(b, "a"))
	_, addr := startUDP(b, svc)
	c := udpClient(b, addr)
	req, resp := []byte("ping"), make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := c.Read(resp); err != nil {
			b.Fatal(err)
		}
	}
}
