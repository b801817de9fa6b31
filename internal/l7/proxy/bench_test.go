package proxy

import (
	"bytes"
	"net"
	"testing"
)

// fastBackend answers every request on a connection with a fixed small
// response, allocation-free, so that a benchmark counts the proxy's
// allocations only.
func fastBackend(tb testing.TB) *rawBackend {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				n := 0
				for {
					k, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += k
					for {
						i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if i < 0 {
							break
						}
						if _, err := c.Write(resp); err != nil {
							return
						}
						n = copy(buf, buf[i+4:n])
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return b
}

// benchClient sends GETs on one connection and reads each response.
type benchClient struct {
	c    net.Conn
	req  []byte
	buf  []byte
	want int
}

func newBenchClient(tb testing.TB, addr string) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	bc := &benchClient{
		c:   c,
		req: []byte("GET /index.html HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"),
		buf: make([]byte, 4096),
	}
	bc.do(tb)
	return bc
}

// do makes one request and checks the answer is the whole response.
func (bc *benchClient) do(tb testing.TB) {
	if _, err := bc.c.Write(bc.req); err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		k, err := bc.c.Read(bc.buf[n:])
		if err != nil {
			tb.Fatal(err)
		}
		n += k
		if i := bytes.Index(bc.buf[:n], []byte("\r\n\r\n")); i >= 0 && bytes.HasSuffix(bc.buf[:n], []byte("Hello, world!")) {
			if !bytes.HasPrefix(bc.buf, []byte("HTTP/1.1 200 ")) {
				tb.Fatalf("got %q", bc.buf[:n])
			}
			return
		}
	}
}

// BenchmarkProxyGET is the fast path: a keep-alive GET without body over
// real loopback sockets, client → proxy → backend and back. The
// allocations reported are the whole process's per request: client and
// backend allocate nothing, so they are the proxy's.
func BenchmarkProxyGET(b *testing.B) {
	be := fastBackend(b)
	svc, _ := service(b, be.addr)
	_, addr := startProxy(b, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true}})
	bc := newBenchClient(b, addr)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bc.do(b)
	}
}

// BenchmarkProxyGETParallel runs several keep-alive clients at once.
func BenchmarkProxyGETParallel(b *testing.B) {
	be := fastBackend(b)
	svc, _ := service(b, be.addr)
	_, addr := startProxy(b, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true}})
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		bc := newBenchClient(b, addr)
		for pb.Next() {
			bc.do(b)
		}
	})
}

// TestFastPathAllocs checks the steady state of the fast path allocates
// nothing per request, proxy, client and backend together.
func TestFastPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count needs a warm process")
	}
	be := fastBackend(t)
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true}})
	bc := newBenchClient(t, addr)
	for range 100 {
		bc.do(t)
	}
	allocs := testing.AllocsPerRun(500, func() { bc.do(t) })
	// Allow a stray allocation from the runtime (a timer, a pool refill
	// after a GC) amortised over the runs, never one per request.
	if allocs >= 0.5 {
		t.Errorf("allocations per request: got %.2f, want 0", allocs)
	}
}
