package hello

import (
	"maps"
	"net"
	"net/netip"
	"testing"
	"time"
)

func loopConn(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addrOf(c net.PacketConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// pair starts two endpoints on loopback, each the other's unicast peer.
func pair(t *testing.T, keyA, keyB []byte) (a, b *Endpoint) {
	ca, cb := loopConn(t), loopConn(t)
	a = New(Options{Node: "lb1", Conn4: ca})
	b = New(Options{Node: "lb2", Conn4: cb})
	t.Cleanup(func() { a.Close(); b.Close() })
	state := func(s string, p uint8) func() (string, uint8) { return func() (string, uint8) { return s, p } }
	if err := a.SetGroups([]Group{{Name: "web", VRID: 51, Peers: []netip.AddrPort{addrOf(cb)}, AuthKey: keyA, State: state("master", 150)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetGroups([]Group{{Name: "web", VRID: 51, Peers: []netip.AddrPort{addrOf(ca)}, AuthKey: keyB, State: state("backup", 100)}}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func waitPeer(t *testing.T, e *Endpoint, what string, ok func([]Peer) bool) []Peer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps := e.Peers("web")
		if ok(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: peers %+v", what, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hashIs(h string) func([]Peer) bool {
	return func(ps []Peer) bool { return len(ps) == 1 && ps[0].ConfigHash == h }
}

func TestExchange(t *testing.T) {
	for _, auth := range []bool{false, true} {
		var key []byte
		if auth {
			key = []byte("0123456789abcdef0123")
		}
		a, b := pair(t, key, key)
		a.SetConfigHash("aaaaaaaaaaaaaaaa0000")
		b.SetConfigHash("bbbbbbbbbbbbbbbb")
		ps := waitPeer(t, b, "b hears a", hashIs("aaaaaaaaaaaaaaaa"))
		if p := ps[0]; p.Node != "lb1" || p.State != "master" || p.Priority != 150 || p.Addr != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("b's peer: %+v", p)
		}
		ps = waitPeer(t, a, "a hears b", hashIs("bbbbbbbbbbbbbbbb"))
		if p := ps[0]; p.Node != "lb2" || p.State != "backup" || p.Priority != 100 {
			t.Errorf("a's peer: %+v", p)
		}
		// A new hash is announced at once, not at the next tick.
		start := time.Now()
		a.SetConfigHash("cccccccccccccccc")
		waitPeer(t, b, "b hears a's new hash", hashIs("cccccccccccccccc"))
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("new hash took %v", d)
		}
		if s := b.Stats("web"); s.Sent == 0 || len(s.Dropped) != 0 {
			t.Errorf("b's stats: %+v", s)
		}
	}
}

func TestAuthMismatchIsDropped(t *testing.T) {
	a, b := pair(t, nil, []byte("0123456789abcdef0123"))
	a.SetConfigHash("aaaaaaaaaaaaaaaa")
	b.SetConfigHash("bbbbbbbbbbbbbbbb")
	// a (no key) hears b's sealed hellos unchecked; b drops a's plain ones.
	waitPeer(t, a, "a hears b", hashIs("bbbbbbbbbbbbbbbb"))
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats("web").Dropped["auth"] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("b dropped nothing: %+v", b.Stats("web"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ps := b.Peers("web"); len(ps) != 0 {
		t.Errorf("b accepted an unauthenticated hello: %+v", ps)
	}
}

// endpoint builds an Endpoint with one group and no running sockets worth
// mentioning, to feed handle directly.
func endpoint(t *testing.T, key []byte, peers ...netip.AddrPort) *Endpoint {
	e := New(Options{Node: "lb2", Conn4: loopConn(t)})
	t.Cleanup(func() { e.Close() })
	// Without peers the group is a multicast one on no interface: the
	// join fails, the group stands.
	if err := e.SetGroups([]Group{{Name: "web", VRID: 51, Peers: peers, AuthKey: key}}); err != nil && len(peers) > 0 {
		t.Fatal(err)
	}
	return e
}

func TestReplayAndStale(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	e := endpoint(t, secret)
	src := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	m := sample()
	m.Time = now
	b, _ := m.Append(nil, Key(secret))
	e.handle(b, src, false, now)
	if len(e.Peers("web")) != 1 {
		t.Fatal("fresh hello not accepted")
	}
	e.handle(b, src, false, now.Add(time.Second)) // replay
	m.Time = now.Add(-time.Minute)
	old, _ := m.Append(nil, Key(secret))
	e.handle(old, src, false, now) // outside the window
	if got := e.Stats("web").Dropped["stale"]; got != 2 {
		t.Errorf("stale drops %d, want 2", got)
	}
	m.Time = now.Add(time.Millisecond)
	next, _ := m.Append(nil, Key(secret))
	e.handle(next, src, false, now)
	if ps := e.Peers("web"); len(ps) != 1 || ps[0].Hellos != 2 {
		t.Errorf("peers %+v", ps)
	}
}

func TestFilters(t *testing.T) {
	peer := netip.MustParseAddrPort("192.0.2.1:8051")
	e := endpoint(t, nil, peer)
	m := sample()
	b, _ := m.Append(nil, nil)
	e.handle(b, netip.MustParseAddr("192.0.2.9"), false, time.Now()) // not a peer
	own := m
	own.Node = "lb2"
	ob, _ := own.Append(nil, nil)
	e.handle(ob, peer.Addr(), false, time.Now()) // our own
	other := m
	other.VRID = 52
	vb, _ := other.Append(nil, nil)
	e.handle(vb, peer.Addr(), false, time.Now())
	unknown := m
	unknown.Group = "mail"
	ub, _ := unknown.Append(nil, nil)
	e.handle(ub, peer.Addr(), false, time.Now())
	e.handle(b[:10], peer.Addr(), false, time.Now())
	if ps := e.Peers("web"); len(ps) != 0 {
		t.Errorf("accepted: %+v", ps)
	}
	want := map[string]uint64{"not_peer": 1, "vrid": 1, "unknown_group": 1, "malformed": 1}
	if d := e.Stats("web").Dropped; !maps.Equal(d, want) {
		t.Errorf("dropped %v, want %v", d, want)
	}
	e.handle(b, peer.Addr(), false, time.Now())
	if ps := e.Peers("web"); len(ps) != 1 {
		t.Errorf("peer's hello not accepted: %+v", ps)
	}
}

func TestExpiry(t *testing.T) {
	e := endpoint(t, nil)
	m := sample()
	b, _ := m.Append(nil, nil)
	e.handle(b, netip.MustParseAddr("192.0.2.1"), false, time.Now().Add(-Expiry-time.Second))
	e.handle(b, netip.MustParseAddr("192.0.2.2"), false, time.Now())
	ps := e.Peers("web")
	if len(ps) != 1 || ps[0].Addr != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("peers %+v", ps)
	}
}

func TestSetGroupsKeepsUnchanged(t *testing.T) {
	e := endpoint(t, nil)
	m := sample()
	b, _ := m.Append(nil, nil)
	e.handle(b, netip.MustParseAddr("192.0.2.1"), false, time.Now())
	e.SetGroups([]Group{{Name: "web", VRID: 51}})
	if len(e.Peers("web")) != 1 {
		t.Error("unchanged group lost its peers")
	}
	e.SetGroups([]Group{{Name: "web", VRID: 52, Peers: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}}})
	if len(e.Peers("web")) != 0 {
		t.Error("changed group kept its peers")
	}
}

// Junk on the hello port, and hellos of groups this node does not have,
// name none of its groups: every group of the socket's family counts
// them, the other family's groups do not.
func TestJunkCounted(t *testing.T) {
	c := loopConn(t)
	e := New(Options{Node: "lb2", Conn4: c})
	t.Cleanup(func() { e.Close() })
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	if err := e.SetGroups([]Group{
		{Name: "web", VRID: 51, Peers: []netip.AddrPort{peer}},
		{Name: "db", VRID: 52, Peers: []netip.AddrPort{peer}},
		{Name: "web6", VRID: 53, Is6: true, Peers: []netip.AddrPort{netip.MustParseAddrPort("[::1]:9")}},
	}); err != nil {
		t.Fatal(err)
	}
	s, err := net.Dial("udp4", c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unknown := sample()
	unknown.Group = "mail"
	ub, _ := unknown.Append(nil, nil)
	gm := sample()
	good, _ := gm.Append(nil, nil)
	const junk = 50
	for i := range junk {
		b := []byte("GET / HTTP/1.1\r\n\r\n")
		switch i % 3 {
		case 1:
			b = good[:len(good)-1-i%7] // truncated hello
		case 2:
			b = []byte{byte(i)}
		}
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Write(ub); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"malformed": junk, "unknown_group": 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := e.Stats("web").Dropped
		if maps.Equal(d, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web dropped %v, want %v (UDP on loopback lost none)", d, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := e.Stats("db").Dropped; !maps.Equal(d, want) {
		t.Errorf("db dropped %v, want %v", d, want)
	}
	if d := e.Stats("web6").Dropped; d != nil {
		t.Errorf("web6 (IPv6) dropped %v, want nothing", d)
	}
}
