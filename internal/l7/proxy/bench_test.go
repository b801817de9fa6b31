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
// nothing per request, proxy, client and backend together: a bare GET,
// and a routed POST with a cookie, forwarding fields and an access log.
func TestFastPathAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a warm process without the race detector")
	}
	be := fastBackend(t)
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true}})
	for name, bc := range map[string]*benchClient{"GET": newBenchClient(t, addr), "routed POST": routedClient(t)} {
		for range 100 {
			bc.do(t)
		}
		allocs := testing.AllocsPerRun(500, func() { bc.do(t) })
		// A stray allocation from the runtime (a timer, a pool refill
		// after a GC) amortised over the runs is tolerated, never one per
		// request.
		if allocs >= 0.5 {
			t.Errorf("%s: allocations per request: got %.2f, want 0", name, allocs)
		}
	}
}

// routedClient starts a proxy with the optional work on: routing by host
// and path, cookie persistence, every forwarding field and an access log;
// its client sends a small POST with a valid persistence cookie.
func routedClient(tb testing.TB) *benchClient {
	be := fastBackend(tb)
	svc, bs := service(tb, be.addr)
	other, _ := service(tb, be.addr)
	ck := &Cookie{Name: "SRV", Key: []byte("k"), HTTPOnly: true}
	var logged int
	_, addr := startProxy(tb, &Config{
		Default: other,
		Routes: []Route{
			{Host: "static.example", Pool: other},
			{Host: "*.example", PathPrefix: "/api/", Pool: svc},
		},
		Cookie:    ck,
		Forward:   Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true, Forwarded: true, XRealIP: true},
		AccessLog: func(e *Entry) { logged += len(e.Path) },
	})
	id := newCookieID(ck, bs[0])
	bc := newBenchClient(tb, addr)
	bc.req = []byte("POST /api/cart HTTP/1.1\r\nHost: shop.example\r\nCookie: a=b; SRV=" + string(id.id[:]) +
		"\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"qty\": 2}\n")
	bc.do(tb)
	return bc
}

// BenchmarkProxyPOSTRouted is the fast path with the optional work on:
// a small POST body, routing, cookie persistence, forwarding fields and
// an access log.
func BenchmarkProxyPOSTRouted(b *testing.B) {
	bc := routedClient(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		bc.do(b)
	}
}
