package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"github.com/google/go-cmp/cmp"
)

var linkSeq atomic.Int32

// vlink is a veth pair between two network namespaces made for one test:
// a real link for raw sockets, multicast and TTL checks, touching nothing
// outside the namespaces.
type vlink struct {
	ns, ifname [2]string
	v4, v6     [2]netip.Addr // each side's primary address
	extra4     netip.Addr    // a second address on side 0, not a peer
}

func newVlink(t *testing.T) *vlink {
	t.Helper()
	n := linkSeq.Add(1)
	pid := os.Getpid()
	l := &vlink{extra4: netip.AddrFrom4([4]byte{10, 251, byte(n), 3})}
	for i, side := range []string{"a", "b"} {
		l.ns[i] = fmt.Sprintf("fulcrum-vrrp-%d-%d%s", pid, n, side)
		l.ifname[i] = fmt.Sprintf("fv%d-%d%s", pid, n, side) // at most 15 bytes
		l.v4[i] = netip.AddrFrom4([4]byte{10, 251, byte(n), byte(i + 1)})
		l.v6[i] = netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: byte(0xa + i)})
		netns.Add(t, l.ns[i])
	}
	netns.IP(t, "-n", l.ns[0], "link", "add", l.ifname[0], "type", "veth", "peer", "name", l.ifname[1], "netns", l.ns[1])
	for i := range 2 {
		ns, dev := l.ns[i], l.ifname[i]
		// A fixed link-local address without DAD, so that IPv6 works at
		// once and PrimaryAddr has exactly one to find.
		netns.IP(t, "-n", ns, "link", "set", dev, "addrgenmode", "none")
		netns.IP(t, "-n", ns, "addr", "add", l.v4[i].String()+"/24", "dev", dev)
		netns.IP(t, "-n", ns, "addr", "add", l.v6[i].String()+"/64", "dev", dev, "nodad")
		netns.IP(t, "-n", ns, "link", "set", dev, "up")
	}
	netns.IP(t, "-n", l.ns[0], "addr", "add", l.extra4.String()+"/24", "dev", l.ifname[0])
	for i := range 2 {
		netns.WaitUp(t, l.ns[i], l.ifname[i])
	}
	return l
}

// inNetns runs fn inside network namespace ns; see netns.Do.
func inNetns(ns string, fn func() error) error { return netns.Do(ns, fn) }

type rawMode struct {
	name    string
	family  Family
	unicast bool
	auth    bool
}

func (m rawMode) side(l *vlink, i int) (local, peer netip.Addr) {
	if m.family == IPv4 {
		return l.v4[i], l.v4[1-i]
	}
	return l.v6[i], l.v6[1-i]
}

// listen opens a Conn on side i of l and returns it with the address
// PrimaryAddr reports there.
func (m rawMode) listen(t *testing.T, l *vlink, i int, source netip.Addr) (Conn, netip.Addr) {
	t.Helper()
	_, peer := m.side(l, i)
	opts := ConnOptions{Interface: l.ifname[i], Family: m.family, Source: source}
	if m.unicast {
		opts.Peers = []netip.Addr{peer}
	}
	if m.auth {
		opts.AuthKey = testKey
	}
	var c Conn
	var primary netip.Addr
	err := inNetns(l.ns[i], func() error {
		var err error
		if primary, err = PrimaryAddr(l.ifname[i], m.family); err != nil {
			return err
		}
		c, err = Listen(opts)
		return err
	})
	if err != nil {
		t.Fatalf("side %d: %v", i, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, primary
}

func receiveWithin(t *testing.T, c Conn, d time.Duration) Packet {
	t.Helper()
	select {
	case p, ok := <-c.Receive():
		if !ok {
			t.Fatal("Receive closed")
		}
		return p
	case <-time.After(d):
		t.Fatalf("nothing received in %v", d)
	}
	return Packet{}
}

var rawModes = []rawMode{
	{name: "ipv4 multicast", family: IPv4},
	{name: "ipv4 unicast", family: IPv4, unicast: true},
	{name: "ipv6 multicast", family: IPv6},
	{name: "ipv6 unicast", family: IPv6, unicast: true},
	{name: "ipv4 multicast authenticated", family: IPv4, auth: true},
	{name: "ipv6 unicast authenticated", family: IPv6, unicast: true, auth: true},
}

// TestRawConn sends adverts between two namespaces over raw sockets and
// checks what arrives: source, TTL 255, the advert, and the drops.
func TestRawConn(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	for _, m := range rawModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			l := newVlink(t)
			a, primaryA := m.listen(t, l, 0, netip.Addr{})
			b, _ := m.listen(t, l, 1, netip.Addr{})
			local, _ := m.side(l, 0)
			if primaryA != local {
				t.Errorf("PrimaryAddr = %v, want %v", primaryA, local)
			}
			vips := addrs("192.0.2.1", "192.0.2.2")
			if m.family == IPv6 {
				vips = addrs("fe80::100", "2001:db8::100")
			}
			adv := Advert{VRID: 51, Priority: 150, MaxAdvertInterval: 100 * time.Millisecond, Addrs: vips}
			if err := a.Send(adv); err != nil {
				t.Fatalf("Send: %v", err)
			}
			p := receiveWithin(t, b, 2*time.Second)
			if p.Err != nil {
				t.Fatalf("received error %v", p.Err)
			}
			if p.Src != local || p.TTL != 255 {
				t.Errorf("from %v with TTL %d, want %v with 255", p.Src, p.TTL, local)
			}
			if diff := cmp.Diff(adv, p.Advert, addrCmp); diff != "" {
				t.Errorf("advert (-sent +received):\n%s", diff)
			}
			// Multicast loop is off: the sender hears nothing of its own.
			select {
			case p := <-a.Receive():
				t.Errorf("sender received %+v", p)
			case <-time.After(50 * time.Millisecond):
			}

			switch {
			case m.unicast && m.family == IPv4:
				// From an address of ours that is not b's peer.
				c, _ := m.listen(t, l, 0, l.extra4)
				if err := c.Send(adv); err != nil {
					t.Fatalf("Send from %v: %v", l.extra4, err)
				}
				if p := receiveWithin(t, b, 2*time.Second); !errors.Is(p.Err, ErrNotPeer) || p.Src != l.extra4 {
					t.Errorf("from a non-peer: %+v, want ErrNotPeer from %v", p, l.extra4)
				}
			case m.auth:
				// A node with the wrong key.
				forger := m
				forger.auth = false
				c, _ := forger.listen(t, l, 0, netip.Addr{})
				if err := c.Send(adv); err != nil {
					t.Fatalf("Send: %v", err)
				}
				if p := receiveWithin(t, b, 2*time.Second); !errors.Is(p.Err, ErrAuth) {
					t.Errorf("unauthenticated advert: %+v, want ErrAuth", p)
				}
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			for range b.Receive() { // drains, then must close
			}
		})
	}
}

// rawNode is an Instance on a raw Conn in one namespace of a vlink.
type rawNode struct {
	in     *Instance
	conn   Conn
	ann    *fakeAnnouncer
	cancel context.CancelFunc
	done   chan error
}

func startRaw(t *testing.T, m rawMode, l *vlink, side int, prio uint8, preempt bool) *rawNode {
	t.Helper()
	conn, primary := m.listen(t, l, side, netip.Addr{})
	vips := addrs("192.0.2.100")
	if m.family == IPv6 {
		vips = addrs("2001:db8::100")
	}
	cfg := Config{VRID: 51, Priority: prio, Preempt: preempt, VIPs: vips, Accept: true, LocalAddr: primary}
	n := &rawNode{conn: conn, ann: &fakeAnnouncer{}, done: make(chan error, 1)}
	n.in = New(cfg, conn, n.ann, nil)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-n.done
	})
	return n
}

// nextMaster waits for in's next transition to Master and returns its
// reason. Events, not State, because State changes a moment before the
// event is sent.
func nextMaster(t *testing.T, in *Instance) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case tr := <-in.Events():
			if tr.To == Master {
				return tr.Reason
			}
		case <-timeout:
			t.Fatal("timed out waiting for a transition to master")
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRawFailover runs two Instances over real sockets between two
// namespaces, with 100ms adverts: the higher priority is elected, a crash
// (its socket closed, no farewell) hands over after the master-down
// interval, a preempting node takes the addresses back, and a clean stop
// hands over at once with priority 0.
func TestRawFailover(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	for _, m := range rawModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			l := newVlink(t)
			a := startRaw(t, m, l, 0, 200, true)
			b := startRaw(t, m, l, 1, 100, false)
			addrA, _ := m.side(l, 0)
			// The addresses too: under load b may have been master for a
			// moment at the start, and it reports Backup before it has
			// given them up.
			waitFor(t, "a master holding the addresses, b backup without them", func() bool {
				return a.in.State() == Master && b.in.State() == Backup && b.in.Status().Master == addrA &&
					a.ann.holds() && !b.ann.holds()
			})
			time.Sleep(500 * time.Millisecond) // a few adverts
			if s := b.in.Status(); len(s.Dropped) != 0 || s.AdvertsReceived < 3 {
				t.Errorf("backup received %d adverts, dropped %v", s.AdvertsReceived, s.Dropped)
			}

			drain(b.in) // b may have been master for a moment at the start

			// Crash: a's socket goes away, no priority 0 gets out.
			a.conn.Close()
			if err := <-a.done; err == nil {
				t.Error("a's Run returned nil when its Conn closed")
			}
			a.done <- nil // for the cleanup
			if r := nextMaster(t, b.in); r != ReasonMasterDown {
				t.Errorf("b took over for %q, want %q", r, ReasonMasterDown)
			}
			if !b.ann.holds() {
				t.Error("b does not hold the addresses")
			}

			// a comes back and preempts.
			a = startRaw(t, m, l, 0, 200, true)
			if r := nextMaster(t, a.in); r != ReasonPreempt {
				t.Errorf("a took over for %q, want %q", r, ReasonPreempt)
			}
			waitFor(t, "b backup again", func() bool { return b.in.State() == Backup })

			// A clean stop: b takes over on a's priority 0 advert.
			a.cancel()
			if err := <-a.done; err != nil {
				t.Errorf("a's Run: %v", err)
			}
			a.done <- nil
			if r := nextMaster(t, b.in); r != ReasonMasterLeft {
				t.Errorf("b took over for %q, want %q", r, ReasonMasterLeft)
			}
			if a.ann.holds() {
				t.Error("a still holds the addresses after stopping")
			}
		})
	}
}

// TestListenErrors: options are checked before any socket is made, so
// this needs no root.
func TestListenErrors(t *testing.T) {
	t.Parallel()
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name string
		opts ConnOptions
	}{
		{"unknown family", ConnOptions{Interface: "lo"}},
		{"no such interface", ConnOptions{Interface: "fulcrum-none0", Family: IPv4}},
		{"source of the other family", ConnOptions{Interface: "lo", Family: IPv6, Source: lo}},
		{"peer of the other family", ConnOptions{Interface: "lo", Family: IPv4, Source: lo, Peers: addrs("fe80::1")}},
		{"short key", ConnOptions{Interface: "lo", Family: IPv4, Source: lo, AuthKey: []byte("short")}},
	}
	for _, tt := range tests {
		if c, err := Listen(tt.opts); err == nil {
			c.Close()
			t.Errorf("%s: Listen succeeded", tt.name)
		}
	}
}
