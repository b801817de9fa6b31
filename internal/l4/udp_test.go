package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// startUDPBackend answers every datagram with "ID:" and the datagram.
func startUDPBackend(t testing.TB, id string) netip.AddrPort {
	t.Helper()
	return startUDPBackendFunc(t, func(dst, b []byte, _ netip.AddrPort) []byte {
		return append(append(append(dst, id...), ':'), b...)
	})
}

// startUDPBackendFunc answers each datagram with what answer appends to
// dst (a reused buffer) for it and its sender; nil: no answer.
func startUDPBackendFunc(t testing.TB, answer func(dst, b []byte, from netip.AddrPort) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf, out := make([]byte, maxDatagram), make([]byte, 0, 2*maxDatagram)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if a := answer(out[:0], buf[:n], from); a != nil {
				pc.WriteToUDPAddrPort(a, from)
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udpSpec() balancer.ServiceSpec {
	s := spec()
	s.Protocol = "udp"
	s.IdleTimeout = time.Minute
	return s
}

// startUDP serves svc on a new loopback socket; at cleanup it shuts the
// proxy down and checks that every session was released.
func startUDP(t testing.TB, svc *balancer.Service) (*UDPProxy, netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	p := NewUDP(svc, testLogger(t))
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		p.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if n := p.Active(); n != 0 {
			t.Errorf("Active after Shutdown: got %d, want 0", n)
		}
	})
	return p, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func udpClient(t testing.TB, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends msg and returns the reply, or "" if none came within wait.
func ask(t testing.TB, c *net.UDPConn, msg string, wait time.Duration) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, maxDatagram)
	n, err := c.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return string(buf[:n])
}

// noReply is how long a test waits to conclude that no reply will come.
const noReply = 300 * time.Millisecond

func TestUDPEchoSticky(t *testing.T) {
	t.Parallel()
	var addrs []netip.AddrPort
	for _, id := range []string{"a", "b", "c"} {
		addrs = append(addrs, startUDPBackend(t, id))
	}
	svc, bs := newService(t, udpSpec(), nil, addrs...)
	p, addr := startUDP(t, svc)

	perBackend := map[string]int{}
	for i := range 6 {
		c := udpClient(t, addr)
		var first string
		for j := range 3 {
			msg := fmt.Sprintf("client %d datagram %d", i, j)
			reply := ask(t, c, msg, waitFor)
			id, payload, _ := strings.Cut(reply, ":")
			if payload != msg {
				t.Fatalf("reply: got %q, want ID:%q", reply, msg)
			}
			if j == 0 {
				first = id
				perBackend[id]++
			} else if id != first {
				t.Errorf("client %d: datagram %d went to %q, want %q like the first", i, j, id, first)
			}
		}
	}
	if want := map[string]int{"a": 2, "b": 2, "c": 2}; fmt.Sprint(perBackend) != fmt.Sprint(want) {
		t.Errorf("sessions per backend: got %v, want %v", perBackend, want)
	}
	st := p.Stats()
	if st.Accepted != 6 || st.Active != 6 {
		t.Errorf("got Accepted %d Active %d, want 6 and 6", st.Accepted, st.Active)
	}
	for _, b := range bs {
		if b.Active() != 2 {
			t.Errorf("backend %v Active: got %d, want 2", b.Addr, b.Active())
		}
	}
}

func TestUDPSessionExpiry(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	be := startUDPBackend(t, "a")
	s := udpSpec()
	s.IdleTimeout = idle
	svc, bs := newService(t, s, nil, be)
	p, addr := startUDP(t, svc)
	c := udpClient(t, addr)

	// A datagram every 20ms keeps the session alive for several timeouts.
	for i := range int(3 * idle / (20 * time.Millisecond)) {
		if got := ask(t, c, "ping", waitFor); got != "a:ping" {
			t.Fatalf("datagram %d: got %q, want a:ping", i, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := p.Stats(); st.Accepted != 1 || st.IdleTimeouts != 0 {
		t.Fatalf("busy session: got Accepted %d IdleTimeouts %d, want 1 and 0", st.Accepted, st.IdleTimeouts)
	}

	eventually(t, "expired", func() bool { return p.Active() == 0 && bs[0].Active() == 0 })
	st := bs[0].Stats()
	if want := uint64(len("ping")) * uint64(3*idle/(20*time.Millisecond)); st.BytesIn != want {
		t.Errorf("backend BytesIn: got %d, want %d", st.BytesIn, want)
	}
	if p.Stats().IdleTimeouts != 1 {
		t.Errorf("IdleTimeouts: got %d, want 1", p.Stats().IdleTimeouts)
	}
	if got := ask(t, c, "again", waitFor); got != "a:again" {
		t.Errorf("after expiry: got %q, want a:again", got)
	}
	if got := p.Stats().Accepted; got != 2 {
		t.Errorf("Accepted after expiry: got %d, want 2", got)
	}
}

func TestUDPMaxSessions(t *testing.T) {
	t.Parallel()
	be := startUDPBackend(t, "a")
	s := udpSpec()
	s.MaxSessions = 2
	s.IdleTimeout = 200 * time.Millisecond
	svc, _ := newService(t, s, nil, be)
	p, addr := startUDP(t, svc)
	c1, c2, c3 := udpClient(t, addr), udpClient(t, addr), udpClient(t, addr)
	for i, c := range []*net.UDPConn{c1, c2} {
		if got := ask(t, c, "hi", waitFor); got != "a:hi" {
			t.Fatalf("client %d: got %q, want a:hi", i+1, got)
		}
	}
	// A third client evicts the least recently active session, c1's.
	if got := ask(t, c2, "hi", waitFor); got != "a:hi" {
		t.Fatalf("client 2 again: got %q, want a:hi", got)
	}
	if got := ask(t, c3, "hi", waitFor); got != "a:hi" {
		t.Fatalf("third client beyond MaxSessions: got %q, want a:hi", got)
	}
	if st := p.Stats(); st.Dropped != 0 || st.Evicted != 1 || st.Accepted != 3 {
		t.Errorf("got Dropped %d Evicted %d Accepted %d, want 0, 1 and 3", st.Dropped, st.Evicted, st.Accepted)
	}
	eventually(t, "two sessions", func() bool { return p.Active() == 2 })
	// c1 comes back as a new session and evicts c2, now the oldest.
	if got := ask(t, c1, "hi", waitFor); got != "a:hi" {
		t.Errorf("first client after eviction: got %q, want a:hi", got)
	}
	if st := p.Stats(); st.Evicted != 2 || st.Accepted != 4 {
		t.Errorf("got Evicted %d Accepted %d, want 2 and 4", st.Evicted, st.Accepted)
	}
}

func TestUDPNoBackend(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, udpSpec(), nil)
	p, addr := startUDP(t, svc)
	if got := ask(t, udpClient(t, addr), "hi", noReply); got != "" {
		t.Errorf("got %q, want no reply", got)
	}
	eventually(t, "counted", func() bool { return p.Stats().NoBackend == 1 })
}

func TestUDPBackendUnreachable(t *testing.T) {
	t.Parallel()
	dead := netip.MustParseAddrPort(freeport.UDP(t))
	svc, _ := newService(t, udpSpec(), nil, dead)
	p, addr := startUDP(t, svc)
	c := udpClient(t, addr)
	// The first datagram draws an ICMP port unreachable; the reply reader
	// or the next send reports it.
	eventually(t, "send errors counted", func() bool {
		c.Write([]byte("hi"))
		return p.Stats().SendErrors > 0
	})
	if got := p.Active(); got != 1 {
		t.Errorf("Active: got %d, want the session kept", got)
	}
}

func TestUDPUpdate(t *testing.T) {
	t.Parallel()
	svcOld, _ := newService(t, udpSpec(), nil, startUDPBackend(t, "old"))
	p, addr := startUDP(t, svcOld)
	c1 := udpClient(t, addr)
	if got := ask(t, c1, "x", waitFor); got != "old:x" {
		t.Fatalf("got %q, want old:x", got)
	}
	svcNew, _ := newService(t, udpSpec(), nil, startUDPBackend(t, "new"))
	p.Update(svcNew)
	if got := ask(t, c1, "y", waitFor); got != "old:y" {
		t.Errorf("live session after Update: got %q, want old:y", got)
	}
	if got := ask(t, udpClient(t, addr), "z", waitFor); got != "new:z" {
		t.Errorf("new session after Update: got %q, want new:z", got)
	}
}

func TestUDPShutdown(t *testing.T) {
	t.Parallel()
	serve := func(t *testing.T, s balancer.ServiceSpec) (*UDPProxy, netip.AddrPort, *balancer.Backend, chan error) {
		svc, bs := newService(t, s, nil, startUDPBackend(t, "a"))
		pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		p := NewUDP(svc, debugLogger())
		served := make(chan error, 1)
		go func() { served <- p.Serve(context.Background(), pc) }()
		return p, pc.LocalAddr().(*net.UDPAddr).AddrPort(), bs[0], served
	}
	t.Run("no sessions", func(t *testing.T) {
		t.Parallel()
		p, _, _, served := serve(t, udpSpec())
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: got %v, want nil", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
	})
	t.Run("drains", func(t *testing.T) {
		t.Parallel()
		s := udpSpec()
		s.IdleTimeout = 200 * time.Millisecond
		p, addr, b, served := serve(t, s)
		old := udpClient(t, addr)
		if got := ask(t, old, "x", waitFor); got != "a:x" {
			t.Fatalf("got %q, want a:x", got)
		}
		shut := make(chan error, 1)
		go func() { shut <- p.Shutdown(context.Background()) }()
		eventually(t, "draining", p.draining.Load)
		if got := ask(t, old, "y", waitFor); got != "a:y" {
			t.Errorf("live session while draining: got %q, want a:y", got)
		}
		if got := ask(t, udpClient(t, addr), "z", noReply); got != "" {
			t.Errorf("new client while draining: got %q, want no reply", got)
		}
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: got %v, want nil", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if b.Active() != 0 || p.Stats().Dropped == 0 {
			t.Errorf("got backend Active %d Dropped %d, want 0 and > 0", b.Active(), p.Stats().Dropped)
		}
	})
	t.Run("forces at deadline", func(t *testing.T) {
		t.Parallel()
		p, addr, b, served := serve(t, udpSpec())
		if got := ask(t, udpClient(t, addr), "x", waitFor); got != "a:x" {
			t.Fatalf("got %q, want a:x", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: got %v, want DeadlineExceeded", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
		if p.Active() != 0 || b.Active() != 0 {
			t.Errorf("got Active %d, backend Active %d; want 0 and 0", p.Active(), b.Active())
		}
	})
}
