package l4

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startUDPAskBackend answers only datagrams that start with "ask", with
// the address it saw them from (the proxy's socket of that session), so a
// test can tell whether a client kept its session. Everything else is
// flood and gets no answer.
func startUDPAskBackend(t testing.TB) netip.AddrPort {
	t.Helper()
	return startUDPBackendFunc(t, func(dst, b []byte, from netip.AddrPort) []byte {
		if !strings.HasPrefix(string(b), "ask") {
			return nil
		}
		return append(append(from.AppendTo(dst), ' '), b...)
	})
}

// udpClientFrom is a client socket bound to src (another loopback
// address than the flood's).
func udpClientFrom(t testing.TB, src string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")), net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// floodFrom sends one datagram to addr from each of n fresh sockets on
// src, each closed at once, and returns how many distinct source ports
// it used (the kernel may hand out a port again).
func floodFrom(t testing.TB, src string, addr netip.AddrPort, n int) int {
	t.Helper()
	ports := map[uint16]bool{}
	for range n {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")), net.UDPAddrFromAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		ports[c.LocalAddr().(*net.UDPAddr).AddrPort().Port()] = true
		if _, err := c.Write([]byte("flood")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	return len(ports)
}

// asks numbers askSession's questions, so that a late answer to an
// earlier one is not taken for the answer to the current one.
var asks atomic.Uint64

// askSession asks through c and returns the proxy's socket the backend
// saw, failing if no answer comes within waitFor. It asks again every
// 200ms, as a real client would: a flood may overrun the proxy's socket
// buffer, and the kernel then drops datagrams before the proxy sees them.
func askSession(t testing.TB, c *net.UDPConn, what string) string {
	t.Helper()
	q := fmt.Sprint("ask ", asks.Add(1))
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		got := ask(t, c, q, 200*time.Millisecond)
		for got != "" && time.Now().Before(deadline) {
			if session, ok := strings.CutSuffix(got, " "+q); ok {
				return session
			}
			got = ask(t, c, q, 200*time.Millisecond) // a late answer to an earlier question
		}
	}
	t.Fatalf("%s: no answer within %v", what, waitFor)
	return ""
}

// A flood from a thousand ports fills the table many times over; before
// eviction it refused every later client until the flood's sessions
// expired (a minute here).
func TestUDPFloodCannotLockOut(t *testing.T) {
	t.Parallel()
	be := startUDPAskBackend(t)
	s := udpSpec()
	s.MaxSessions = 64
	s.MaxPerClient = 1 << 20 // only the table's limit here
	svc, _ := newService(t, s, nil, be)
	p, addr := startUDP(t, svc)

	floodFrom(t, "127.0.0.1", addr, 1000)
	real := udpClientFrom(t, "127.0.0.2", addr)
	askSession(t, real, "a new client after the flood")
	// Every session beyond the table's size evicted one. (The kernel may
	// have dropped part of the burst before the proxy read it.)
	st := p.Stats()
	if st.Accepted < 2*uint64(s.MaxSessions) || st.Evicted != st.Accepted-uint64(s.MaxSessions) || st.Dropped != 0 {
		t.Errorf("got Accepted %d Evicted %d Dropped %d, want Accepted above %d, Evicted = Accepted - %d, Dropped 0",
			st.Accepted, st.Evicted, st.Dropped, 2*s.MaxSessions, s.MaxSessions)
	}
	eventually(t, "at the table's size", func() bool { return p.Active() == s.MaxSessions })
}

// A client that keeps talking keeps its session while a flood churns the
// table around it: the least recently active session goes first.
func TestUDPEvictsLeastRecent(t *testing.T) {
	t.Parallel()
	be := startUDPAskBackend(t)
	s := udpSpec()
	s.MaxSessions = 8
	s.MaxPerClient = 1 << 20
	svc, _ := newService(t, s, nil, be)
	p, addr := startUDP(t, svc)

	real := udpClientFrom(t, "127.0.0.2", addr)
	first := askSession(t, real, "first ask")
	flooded := 0
	for i := range 50 {
		flooded += floodFrom(t, "127.0.0.1", addr, 4)
		if got := askSession(t, real, fmt.Sprintf("ask %d", i)); got != first {
			t.Fatalf("ask %d after %d flood datagrams: the backend saw %s, want %s (the session was evicted)", i, flooded, got, first)
		}
	}
	if st := p.Stats(); st.Evicted == 0 || st.Dropped != 0 {
		t.Errorf("got Evicted %d Dropped %d, want > 0 and 0", st.Evicted, st.Dropped)
	}
	// Once it falls silent it is the oldest, and the next newcomers push
	// it out.
	floodFrom(t, "127.0.0.3", addr, 2*s.MaxSessions)
	if got := askSession(t, real, "after falling silent"); got == first {
		t.Errorf("a silent session survived %d newer ones in a table of %d", 2*s.MaxSessions, s.MaxSessions)
	}
}

// One address flooding from many ports holds at most
// max_sessions_per_client sessions, its own oldest making room for its
// newest; the table never fills and nobody else is evicted.
func TestUDPPerClientLimit(t *testing.T) {
	t.Parallel()
	be := startUDPAskBackend(t)
	s := udpSpec()
	s.MaxSessions = 1000
	s.MaxPerClient = 16
	svc, _ := newService(t, s, nil, be)
	p, addr := startUDP(t, svc)

	other := udpClientFrom(t, "127.0.0.2", addr)
	first := askSession(t, other, "another address before the flood")
	floodFrom(t, "127.0.0.1", addr, 300)
	// The flood's newest session still works.
	last := udpClientFrom(t, "127.0.0.1", addr)
	askSession(t, last, "the flooding address's newest port")
	if got := askSession(t, other, "another address after the flood"); got != first {
		t.Errorf("another address lost its session: the backend saw %s, want %s", got, first)
	}
	// Every session of 127.0.0.1 beyond its 16 evicted one of its own.
	st := p.Stats()
	if want := st.Accepted - 1 - uint64(s.MaxPerClient); st.Accepted < 100 || st.EvictedPerClient != want || st.Evicted != 0 || st.Dropped != 0 {
		t.Errorf("got Accepted %d EvictedPerClient %d Evicted %d Dropped %d, want Accepted at least 100, EvictedPerClient %d, 0 and 0",
			st.Accepted, st.EvictedPerClient, st.Evicted, st.Dropped, want)
	}
	eventually(t, "16 + 1 sessions", func() bool { return p.Active() == s.MaxPerClient+1 })
}

// TestUDPTableOrder drives the table alone: recency orders, per-address
// lists, and the second chance of a session whose backend answered.
func TestUDPTableOrder(t *testing.T) {
	t.Parallel()
	tb := newUDPTable()
	mk := func(s string) *udpSession { return &udpSession{client: netip.MustParseAddrPort(s)} }
	a1, a2, b1 := mk("192.0.2.1:1"), mk("192.0.2.1:2"), mk("192.0.2.2:1")
	for _, s := range []*udpSession{a1, a2, b1} {
		tb.add(s)
	}
	if tb.len() != 3 || tb.addrSessions(a1.client.Addr()) != 2 || tb.oldestOf(a1.client.Addr()) != a1 {
		t.Fatalf("after adding: len %d, 192.0.2.1 has %d, oldest %v", tb.len(), tb.addrSessions(a1.client.Addr()), tb.oldestOf(a1.client.Addr()).client)
	}
	tb.used(a1)
	if v := tb.victim(); v != a2 {
		t.Errorf("victim after a1 was used: got %v, want a2", v.client)
	}
	if o := tb.oldestOf(a1.client.Addr()); o != a2 {
		t.Errorf("oldest of 192.0.2.1 after a1 was used: got %v, want a2", o.client)
	}
	a2.replied.Store(true)
	if v := tb.victim(); v != b1 {
		t.Errorf("victim when a2's backend answered: got %v, want b1", v.client)
	}
	if a2.replied.Load() {
		t.Error("a2 kept its second chance after using it")
	}
	tb.remove(b1)
	tb.remove(b1) // twice is harmless
	if tb.addrSessions(b1.client.Addr()) != 0 || tb.len() != 2 {
		t.Errorf("after removing b1: len %d, 192.0.2.2 has %d", tb.len(), tb.addrSessions(b1.client.Addr()))
	}
	// Every session answered: after secondChances passes the oldest goes.
	for _, s := range []*udpSession{a1, a2} {
		s.replied.Store(true)
	}
	if v := tb.victim(); v == nil {
		t.Error("no victim when all answered")
	}
}
