package l4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/proxyproto"
)

func TestTCPEcho(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			be := startBackend(t, network, echo)
			svc, bs := newService(t, spec(), nil, be.addr)
			p, addr := startTCP(t, network, svc)
			c := dial(t, addr)
			for _, msg := range []string{"hello", "world", strings.Repeat("x", 10000)} {
				if got := roundTrip(t, c, c, msg); got != msg {
					t.Fatalf("echo: got %q, want %q", got, msg)
				}
			}
			c.Close()
			eventually(t, "released", func() bool { return bs[0].Active() == 0 && p.Active() == 0 })
			st := bs[0].Stats()
			if want := uint64(5 + 5 + 10000); st.BytesIn != want || st.BytesOut != want {
				t.Errorf("backend bytes: got in %d out %d, want %d each", st.BytesIn, st.BytesOut, want)
			}
			if got := p.Stats().Accepted; got != 1 {
				t.Errorf("Accepted: got %d, want 1", got)
			}
		})
	}
}

func TestTCPHalfClose(t *testing.T) {
	t.Parallel()
	// The backend answers only after the client's EOF, then closes.
	be := startBackend(t, "tcp4", func(c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		io.WriteString(c, "reply:"+string(req))
	})
	svc, _ := newService(t, spec(), nil, be.addr)
	_, addr := startTCP(t, "tcp4", svc)
	c := dial(t, addr)
	io.WriteString(c, "ping")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(got) != "reply:ping" {
		t.Errorf("got %q, want %q followed by EOF", got, "reply:ping")
	}
}

func TestTCPLargeTransfer(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	be := startBackend(t, "tcp4", echo)
	svc, bs := newService(t, spec(), nil, be.addr)
	_, addr := startTCP(t, "tcp4", svc)
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(4 * waitFor))

	chunk := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(chunk)
	want := sha256.New()
	for range size / len(chunk) {
		want.Write(chunk)
	}
	errc := make(chan error, 1)
	go func() {
		for range size / len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil {
		t.Fatalf("read: %v after %d bytes", err, n)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != size {
		t.Fatalf("got %d bytes back, want %d", n, size)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("echoed bytes differ from the bytes sent")
	}
	c.Close()
	eventually(t, "released", func() bool { return bs[0].Active() == 0 })
	if st := bs[0].Stats(); st.BytesIn != size || st.BytesOut != size {
		t.Errorf("backend bytes: got in %d out %d, want %d each", st.BytesIn, st.BytesOut, size)
	}
}

func TestTCPRoundRobin(t *testing.T) {
	t.Parallel()
	var addrs []netip.AddrPort
	for _, id := range []string{"a", "b", "c"} {
		addrs = append(addrs, startBackend(t, "tcp4", hello(id)).addr)
	}
	svc, _ := newService(t, spec(), nil, addrs...)
	_, addr := startTCP(t, "tcp4", svc)
	var got []string
	for range 6 {
		c := dial(t, addr)
		got = append(got, readLine(t, bufio.NewReader(c)))
		c.Close()
	}
	if want := "a b c a b c"; strings.Join(got, " ") != want {
		t.Errorf("backends in turn: got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestTCPConnectFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		live          bool
		retries       int
		wantServed    bool
		wantFailures  uint64
		wantNoBackend uint64
	}{
		{name: "dead then live", live: true, retries: 2, wantServed: true, wantFailures: 1},
		{name: "all dead", retries: 5, wantFailures: 2, wantNoBackend: 1},
		{name: "no retries", live: true, retries: 0, wantFailures: 1, wantNoBackend: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addrs := []netip.AddrPort{deadAddr(t)}
			if tt.live {
				addrs = append(addrs, startBackend(t, "tcp4", hello("live")).addr)
			} else {
				addrs = append(addrs, deadAddr(t))
			}
			s := spec()
			s.Retries = tt.retries
			svc, bs := newService(t, s, nil, addrs...)
			obs := []*countingObserver{{}, {}}
			for i, b := range bs {
				b.SetObserver(obs[i])
			}
			p, addr := startTCP(t, "tcp4", svc)
			c := dial(t, addr)
			if tt.wantServed {
				if got := readLine(t, bufio.NewReader(c)); got != "live" {
					t.Errorf("got %q, want the live backend", got)
				}
			} else {
				expectClosed(t, c)
			}
			c.Close()
			eventually(t, "connection finished", func() bool { return p.Active() == 0 })
			st := p.Stats()
			if st.ConnectFailures != tt.wantFailures || st.NoBackend != tt.wantNoBackend {
				t.Errorf("got ConnectFailures %d NoBackend %d, want %d and %d",
					st.ConnectFailures, st.NoBackend, tt.wantFailures, tt.wantNoBackend)
			}
			if got := bs[0].Stats().ConnectFailed; got != 1 {
				t.Errorf("dead backend ConnectFailed: got %d, want 1", got)
			}
			if f, ok := obs[0].failed.Load(), obs[0].succeeded.Load(); f != 1 || ok != 0 {
				t.Errorf("dead backend observer: got %d failed %d succeeded, want 1 and 0", f, ok)
			}
			if tt.wantServed && obs[1].succeeded.Load() != 1 {
				t.Errorf("live backend observer: got %d succeeded, want 1", obs[1].succeeded.Load())
			}
			for i, b := range bs {
				if b.Active() != 0 {
					t.Errorf("backend %d Active: got %d, want 0", i, b.Active())
				}
			}
		})
	}
}

// countingObserver is a passive health checker that only counts.
type countingObserver struct{ failed, succeeded atomic.Int64 }

func (o *countingObserver) Failed(string) { o.failed.Add(1) }
func (o *countingObserver) Succeeded()    { o.succeeded.Add(1) }

func TestTCPNoBackends(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, spec(), nil)
	p, addr := startTCP(t, "tcp4", svc)
	expectClosed(t, dial(t, addr))
	eventually(t, "counted", func() bool { return p.Stats().NoBackend == 1 })
}

func TestTCPUpdateMidStream(t *testing.T) {
	t.Parallel()
	old := startBackend(t, "tcp4", hello("old"))
	svcOld, bsOld := newService(t, spec(), nil, old.addr)
	p, addr := startTCP(t, "tcp4", svcOld)

	c1 := dial(t, addr)
	r1 := bufio.NewReader(c1)
	if got := readLine(t, r1); got != "old" {
		t.Fatalf("first connection: got %q, want old", got)
	}

	nu := startBackend(t, "tcp4", hello("new"))
	svcNew, _ := newService(t, spec(), nil, nu.addr)
	p.Update(svcNew)

	if got := roundTrip(t, c1, r1, "still there"); got != "still there" {
		t.Errorf("established connection after Update: got %q", got)
	}
	c2 := dial(t, addr)
	if got := readLine(t, bufio.NewReader(c2)); got != "new" {
		t.Errorf("new connection after Update: got %q, want new", got)
	}
	if got := bsOld[0].Active(); got != 1 {
		t.Errorf("old backend Active: got %d, want 1", got)
	}
	if old.accepted.Load() != 1 {
		t.Errorf("old backend accepted %d connections, want 1", old.accepted.Load())
	}
}

// proxyHeaderBackend reads a PROXY header, reports it, then echoes.
func proxyHeaderBackend(headers chan<- proxyproto.Header) func(net.Conn) {
	return func(c net.Conn) {
		h, err := proxyproto.ReadHeader(c)
		if err != nil {
			headers <- proxyproto.Header{}
			return
		}
		headers <- h
		io.Copy(c, c)
	}
}

func TestTCPSendProxy(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			headers := make(chan proxyproto.Header, 1)
			be := startBackend(t, "tcp4", proxyHeaderBackend(headers))
			s := spec()
			s.SendProxy = version
			svc, _ := newService(t, s, nil, be.addr)
			_, addr := startTCP(t, "tcp4", svc)
			c := dial(t, addr)
			if got := roundTrip(t, c, c, "after header"); got != "after header" {
				t.Errorf("echo: got %q", got)
			}
			h := <-headers
			wantV := map[string]int{"v1": 1, "v2": 2}[version]
			wantSrc := c.LocalAddr().(*net.TCPAddr).AddrPort()
			wantDst := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			if h.Version != wantV || h.Source != wantSrc || h.Dest != wantDst {
				t.Errorf("backend saw v%d %v → %v, want v%d %v → %v", h.Version, h.Source, h.Dest, wantV, wantSrc, wantDst)
			}
		})
	}
}

func TestTCPAcceptProxy(t *testing.T) {
	t.Parallel()
	fakeSrc := netip.MustParseAddrPort("203.0.113.9:4242")
	fakeDst := netip.MustParseAddrPort("198.51.100.1:80")
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			headers := make(chan proxyproto.Header, 1)
			be := startBackend(t, "tcp4", proxyHeaderBackend(headers))
			s := spec()
			s.AcceptProxy, s.SendProxy = true, "v2"
			svc, _ := newService(t, s, nil, be.addr)
			_, addr := startTCP(t, "tcp4", svc)
			c := dial(t, addr)
			hdr := proxyproto.AppendV1(nil, fakeSrc, fakeDst)
			if version == "v2" {
				hdr = proxyproto.AppendV2(nil, fakeSrc, fakeDst)
			}
			// Header and data in one segment: the proxy must not swallow the data.
			c.Write(append(hdr, "data"...))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "data" {
				t.Fatalf("echo: got %q, %v; want data", buf, err)
			}
			h := <-headers
			if h.Source != fakeSrc || h.Dest != fakeDst {
				t.Errorf("backend saw %v → %v, want %v → %v", h.Source, h.Dest, fakeSrc, fakeDst)
			}
		})
	}
}

func TestTCPAcceptProxyPersistence(t *testing.T) {
	t.Parallel()
	var addrs []netip.AddrPort
	for _, id := range []string{"a", "b", "c"} {
		addrs = append(addrs, startBackend(t, "tcp4", hello(id)).addr)
	}
	s := spec()
	s.AcceptProxy = true
	svc, _ := newService(t, s, balancer.NewPersistence(time.Hour, 32, 128, 1024), addrs...)
	_, addr := startTCP(t, "tcp4", svc)
	vip := netip.MustParseAddrPort("198.51.100.1:80")
	connect := func(src string) string {
		c := dial(t, addr)
		defer c.Close()
		c.Write(proxyproto.AppendV2(nil, netip.MustParseAddrPort(src), vip))
		return readLine(t, bufio.NewReader(c))
	}
	first := connect("203.0.113.9:1000")
	other := connect("203.0.113.10:1000") // moves round robin on
	if other == first {
		t.Fatalf("two clients on %q: round robin did not move", first)
	}
	for port := range 3 {
		if got := connect(netip.AddrPortFrom(netip.MustParseAddr("203.0.113.9"), uint16(2000+port)).String()); got != first {
			t.Errorf("persistent client: got backend %q, want %q", got, first)
		}
	}
}

func TestTCPBadProxyHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		send  string
		close bool // close the write side after sending
	}{
		{name: "http request", send: "GET / HTTP/1.1\r\nHost: example\r\n\r\n"},
		{name: "bad v1 address", send: "PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\nGET /"},
		{name: "bad v2 version", send: "\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c0123456789ab"},
		{name: "truncated", send: "PROXY TCP4 1.2.3.4", close: true},
		{name: "silent client", send: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startBackend(t, "tcp4", echo)
			s := spec()
			s.AcceptProxy = true
			s.ProxyHeaderTimeout = 200 * time.Millisecond
			svc, bs := newService(t, s, nil, be.addr)
			p, addr := startTCP(t, "tcp4", svc)
			c := dial(t, addr)
			io.WriteString(c, tt.send)
			if tt.close {
				c.CloseWrite()
			}
			expectClosed(t, c)
			eventually(t, "counted", func() bool { return p.Stats().ProxyHeaderErrors == 1 })
			if n := be.accepted.Load(); n != 0 {
				t.Errorf("backend got %d connections, want 0", n)
			}
			if st := bs[0].Stats(); st.Total != 0 {
				t.Errorf("backend Total: got %d, want 0", st.Total)
			}
		})
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	t.Parallel()
	// Traffic every 40ms keeps a connection busy with ten times margin
	// against the timeout, for slow CI machines.
	const (
		idle  = 400 * time.Millisecond
		every = 40 * time.Millisecond
		busy  = 5 * idle / 2
	)
	listeners := map[string]func(net.Listener) net.Listener{
		"kernel counters":  func(ln net.Listener) net.Listener { return ln },
		"counting readers": func(ln net.Listener) net.Listener { return plainListener{ln} },
	}
	for name, wrap := range listeners {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The backend streams a byte every 40ms while told to ("s"),
			// and otherwise echoes.
			be := startBackend(t, "tcp4", func(c net.Conn) {
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if buf[0] != 's' {
						c.Write(buf)
						continue
					}
					for range int(busy / every) {
						time.Sleep(every)
						if _, err := c.Write([]byte{'.'}); err != nil {
							return
						}
					}
					c.Write([]byte{'!'})
				}
			})
			s := spec()
			s.IdleTimeout = idle
			svc, _ := newService(t, s, nil, be.addr)
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p := serveTCP(t, svc, wrap(ln))

			// Busy backend→client only, then client→backend only: neither
			// may be cut although the other direction is silent.
			c := dial(t, ln.Addr().String())
			c.Write([]byte{'s'})
			got, err := bufio.NewReader(c).ReadString('!')
			if err != nil {
				t.Fatalf("streaming backend cut after %d bytes: %v", len(got), err)
			}
			for range int(busy / every) {
				time.Sleep(every)
				if got := roundTrip(t, c, c, "x"); got != "x" {
					t.Fatalf("echo: got %q", got)
				}
			}
			if n := p.Stats().IdleTimeouts; n != 0 {
				t.Fatalf("IdleTimeouts while busy: got %d, want 0", n)
			}

			start := time.Now()
			expectClosed(t, c)
			if d := time.Since(start); d < idle/2 {
				t.Errorf("idle connection closed after %v, want about %v", d, idle)
			}
			eventually(t, "counted", func() bool { return p.Stats().IdleTimeouts == 1 })
		})
	}
}

func TestTCPShutdown(t *testing.T) {
	t.Parallel()
	t.Run("drains", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, "tcp4", echo)
		svc, _ := newService(t, spec(), nil, be.addr)
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := NewTCP(svc, debugLogger())
		served := make(chan error, 1)
		go func() { served <- p.Serve(context.Background(), ln) }()
		c := dial(t, ln.Addr().String())
		roundTrip(t, c, c, "x")

		shut := make(chan error, 1)
		go func() { shut <- p.Shutdown(context.Background()) }()
		if err := <-served; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if _, err := net.DialTimeout("tcp4", ln.Addr().String(), waitFor); err == nil {
			t.Error("listener still accepting after Shutdown")
		}
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a connection open", err)
		case <-time.After(100 * time.Millisecond):
		}
		if got := roundTrip(t, c, c, "during drain"); got != "during drain" {
			t.Errorf("echo during drain: got %q", got)
		}
		c.Close()
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: got %v, want nil", err)
		}
	})
	t.Run("forces at deadline", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, "tcp4", echo)
		svc, bs := newService(t, spec(), nil, be.addr)
		p, addr := startTCP(t, "tcp4", svc)
		c := dial(t, addr)
		roundTrip(t, c, c, "x")
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: got %v, want DeadlineExceeded", err)
		}
		if n := p.Active(); n != 0 {
			t.Errorf("Active after forced Shutdown: got %d, want 0", n)
		}
		if n := bs[0].Active(); n != 0 {
			t.Errorf("backend Active after forced Shutdown: got %d, want 0", n)
		}
		expectClosed(t, c)
	})
	t.Run("serve after shutdown", func(t *testing.T) {
		t.Parallel()
		svc, _ := newService(t, spec(), nil)
		p := NewTCP(svc, debugLogger())
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Serve(context.Background(), ln); err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener: got %v, want it closed", err)
		}
	})
}

func TestTCPServeStopsWithContext(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, spec(), nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewTCP(svc, debugLogger())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve still running after its context ended")
	}
}

func TestTCPConcurrentConnections(t *testing.T) {
	t.Parallel()
	var addrs []netip.AddrPort
	for range 3 {
		addrs = append(addrs, startBackend(t, "tcp4", echo).addr)
	}
	svc, bs := newService(t, spec(), nil, addrs...)
	p, addr := startTCP(t, "tcp4", svc)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp4", addr, waitFor)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitFor))
			msg := strings.Repeat(string(rune('a'+i%26)), 1000+i)
			io.WriteString(c, msg)
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				t.Errorf("conn %d: got %d bytes, %v", i, len(buf), err)
			}
		})
	}
	wg.Wait()
	eventually(t, "all closed", func() bool { return p.Active() == 0 })
	var total uint64
	for _, b := range bs {
		st := b.Stats()
		if st.Total != 10 {
			t.Errorf("backend %v Total: got %d, want 10", b.Addr, st.Total)
		}
		total += st.Total
	}
	if total != 30 {
		t.Errorf("Total: got %d, want 30", total)
	}
}

// flakyListener fails its first Accepts with the given errors.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

type tempError struct{}

func (tempError) Error() string   { return "too many open files" }
func (tempError) Temporary() bool { return true }
func (tempError) Timeout() bool   { return false }

func TestTCPAcceptErrors(t *testing.T) {
	t.Parallel()
	t.Run("temporary errors back off and go on", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, "tcp4", echo)
		svc, _ := newService(t, spec(), nil, be.addr)
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveTCP(t, svc, &flakyListener{Listener: ln, errs: []error{tempError{}, tempError{}}})
		c := dial(t, ln.Addr().String())
		if got := roundTrip(t, c, c, "hi"); got != "hi" {
			t.Errorf("echo after accept errors: got %q", got)
		}
	})
	t.Run("other errors end Serve", func(t *testing.T) {
		t.Parallel()
		svc, _ := newService(t, spec(), nil)
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err = NewTCP(svc, debugLogger()).Serve(context.Background(), &flakyListener{Listener: ln, errs: []error{boom}})
		if !errors.Is(err, boom) {
			t.Errorf("Serve: got %v, want %v", err, boom)
		}
	})
}
