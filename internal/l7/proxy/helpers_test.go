package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// waitFor bounds every wait in these tests: generous, because a busy
// 2-core machine running -race can be slow, and never reached when the
// code is right.
const waitFor = 10 * time.Second

// testLogger logs at Debug into nothing, so the Debug paths run (and
// race-check) without writing through t after a test ends; benchmarks
// measure what production runs, at Info.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// rawBackend is a TCP server on loopback that runs serve on every
// connection, counts connections and keeps every byte it received.
type rawBackend struct {
	addr     netip.AddrPort
	accepted atomic.Int64
	mu       sync.Mutex
	got      bytes.Buffer
}

func startRaw(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(io.TeeReader(c, recorder{b})))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return b
}

type recorder struct{ b *rawBackend }

// Write keeps the first MiB: enough for every assertion, and a large body
// through the backend does not fill the test's memory.
func (r recorder) Write(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if room := 1<<20 - r.b.got.Len(); room > 0 {
		r.b.got.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *rawBackend) received() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got.String()
}

// httpBackend is a net/http server on loopback that counts connections.
type httpBackend struct {
	addr  netip.AddrPort
	conns atomic.Int64
	srv   *http.Server
}

func startHTTP(t testing.TB, h http.HandlerFunc) *httpBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &httpBackend{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	b.srv = &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		b.srv.Close()
		<-done
	})
	return b
}

// service builds a round-robin service over addrs.
func service(t testing.TB, addrs ...netip.AddrPort) (*balancer.Service, []*balancer.Backend) {
	return serviceWith(t, nil, nil, addrs...)
}

func serviceWith(t testing.TB, fallback *balancer.Backend, persist *balancer.Persistence, addrs ...netip.AddrPort) (*balancer.Service, []*balancer.Backend) {
	t.Helper()
	var bs []*balancer.Backend
	for _, a := range addrs {
		bs = append(bs, balancer.NewBackend(a, 1, 0))
	}
	svc, err := balancer.NewService(balancer.ServiceSpec{Name: "web", Protocol: "http", Scheduler: "rr"}, bs, nil, fallback, persist)
	if err != nil {
		t.Fatal(err)
	}
	return svc, bs
}

// startProxy serves cfg on a loopback port and shuts it down at cleanup.
func startProxy(t testing.TB, cfg *Config) (*Proxy, string) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "web"
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	p := New(cfg)
	return p, serveProxy(t, p)
}

// serveProxy serves p on a loopback port, shuts it down at cleanup and
// returns the port's address.
func serveProxy(t testing.TB, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// client is a raw HTTP/1.1 client connection to the proxy.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one response to a request with method.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// roundTrip sends req and reads its response.
func (c *client) roundTrip(req string) (*http.Response, string) {
	c.t.Helper()
	c.send(req)
	method, _, _ := strings.Cut(req, " ")
	return c.read(method)
}

// closed reports whether the proxy closed the connection (reads EOF
// after whatever was buffered).
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := c.br.ReadByte()
	return err != nil
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: shop.example\r\n\r\n"
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func timeNowPlus(d time.Duration) time.Time { return time.Now().Add(d) }

// chunkWriter writes HTTP/1.1 chunks, as a backend would.
type chunkWriter struct{ w io.Writer }

func newChunkWriter(w io.Writer) *chunkWriter { return &chunkWriter{w} }

func (c *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if _, err := fmt.Fprintf(c.w, "%x\r\n", len(p)); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	_, err = io.WriteString(c.w, "\r\n")
	return n, err
}

func (c *chunkWriter) Close() error {
	_, err := io.WriteString(c.w, "0\r\n\r\n")
	return err
}
