package l4

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// waitFor bounds every wait in these tests: generous, because a busy
// 2-core CI machine running -race can be slow, and never reached when the
// code is right.
const waitFor = 10 * time.Second

// debugLogger logs at Debug into nothing, so the Debug paths run (and
// race-check) without writing through t after a test ends.
func debugLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testLogger is debugLogger for tests; benchmarks measure what production
// runs, at Info.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return debugLogger()
}

// testBackend is a TCP server on loopback that runs serve on every
// connection and counts them.
type testBackend struct {
	addr     netip.AddrPort
	accepted atomic.Int64
}

func startBackend(t testing.TB, network string, serve func(net.Conn)) *testBackend {
	t.Helper()
	ln, err := net.Listen(network, loopback(network))
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return b
}

func loopback(network string) string {
	if strings.HasSuffix(network, "6") {
		return "[::1]:0"
	}
	return "127.0.0.1:0"
}

// deadAddr returns an address nothing listens on, reserved so that nobody
// else can take it (package freeport): a connect to it is refused.
func deadAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	return netip.MustParseAddrPort(freeport.TCP(t))
}

// echo sends back what it reads until EOF.
func echo(c net.Conn) { io.Copy(c, c) }

// hello introduces the backend with one line, then echoes.
func hello(id string) func(net.Conn) {
	return func(c net.Conn) {
		io.WriteString(c, id+"\n")
		io.Copy(c, c)
	}
}

func spec() balancer.ServiceSpec {
	return balancer.ServiceSpec{
		Name:               "test",
		Protocol:           "tcp",
		Scheduler:          "rr",
		ConnectTimeout:     waitFor,
		ProxyHeaderTimeout: waitFor,
		Retries:            2,
	}
}

func newService(t testing.TB, s balancer.ServiceSpec, persist *balancer.Persistence, addrs ...netip.AddrPort) (*balancer.Service, []*balancer.Backend) {
	t.Helper()
	bs := make([]*balancer.Backend, len(addrs))
	for i, a := range addrs {
		bs[i] = balancer.NewBackend(a, 1, 0)
	}
	svc, err := balancer.NewService(s, bs, nil, nil, persist)
	if err != nil {
		t.Fatal(err)
	}
	return svc, bs
}

// startTCP serves svc on a new loopback listener. At cleanup it shuts
// the proxy down, forcing after a short drain, and checks Serve's result.
func startTCP(t testing.TB, network string, svc *balancer.Service) (*TCPProxy, string) {
	t.Helper()
	ln, err := net.Listen(network, loopback(network))
	if err != nil {
		t.Fatal(err)
	}
	return serveTCP(t, svc, ln), ln.Addr().String()
}

func serveTCP(t testing.TB, svc *balancer.Service, ln net.Listener) *TCPProxy {
	t.Helper()
	p := NewTCP(svc, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		sctx, stop := context.WithTimeout(context.Background(), time.Second)
		defer stop()
		p.Shutdown(sctx)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if n := p.Active(); n != 0 {
			t.Errorf("Active after Shutdown: got %d, want 0", n)
		}
	})
	return p
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func readLine(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: got %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// roundTrip writes msg and reads back len(msg) bytes.
func roundTrip(t testing.TB, c net.Conn, r io.Reader, msg string) string {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

// expectClosed waits for the peer to close c and fails if data arrives.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	n, err := c.Read(make([]byte, 1))
	if n > 0 {
		t.Fatalf("got data, want the connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", waitFor)
	}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after %v", what, waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// plainListener hides *net.TCPConn behind another type, as a wrapping
// listener would; the proxy must then fall back to counting bytes.
type plainListener struct{ net.Listener }

type plainConn struct{ *net.TCPConn }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c.(*net.TCPConn)}, nil
}
