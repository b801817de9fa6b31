package netif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"golang.org/x/sys/unix"
)

// The addresses exist only inside the namespaces each test makes.
var (
	macA = net.HardwareAddr{0x02, 0, 0, 0x77, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0x77, 0, 2}
	// bogusMAC is what B believes a VIP is at before we announce it.
	bogusMAC = "02:00:00:00:00:99"
)

// pair is two network namespaces joined by a veth: side A (index 0) runs
// the Announcer, side B watches. Both are deleted when the test ends,
// whatever happened.
type pair struct {
	ns, ifname [2]string
}

func newPair(t *testing.T, ifnameA string) *pair {
	t.Helper()
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	p := &pair{ifname: [2]string{ifnameA, "fnb"}}
	for i := range 2 {
		p.ns[i] = fmt.Sprintf("fulcrum-netif-%08x-%d-%c", h.Sum32(), os.Getpid(), 'a'+i)
		netns.Add(t, p.ns[i])
	}
	netns.IP(t, "-n", p.ns[0], "link", "add", p.ifname[0], "address", macA.String(), "type", "veth",
		"peer", "name", p.ifname[1], "address", macB.String(), "netns", p.ns[1])
	for i := range 2 {
		ns, dev := p.ns[i], p.ifname[i]
		// No automatic link-local address: fewer packets to filter, and
		// nothing that depends on DAD.
		netns.IP(t, "-n", ns, "link", "set", dev, "addrgenmode", "none")
		netns.IP(t, "-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", dev)
		netns.IP(t, "-n", ns, "addr", "add", fmt.Sprintf("fd00:77::%d/64", i+1), "dev", dev, "nodad")
		netns.IP(t, "-n", ns, "link", "set", dev, "up")
	}
	for i := range 2 {
		netns.WaitUp(t, p.ns[i], p.ifname[i])
	}
	return p
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inNetns runs fn inside network namespace ns; see netns.Do.
func inNetns(ns string, fn func() error) error { return netns.Do(ns, fn) }

func (p *pair) announcer(t *testing.T, opts Options) *Announcer {
	t.Helper()
	opts.Interface = p.ifname[0]
	var a *Announcer
	if err := inNetns(p.ns[0], func() (err error) { a, err = New(opts); return err }); err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// addrLines are A's `ip -o addr` lines that show vip.
func (p *pair) addrLines(t *testing.T, vip netip.Addr) []string {
	t.Helper()
	var lines []string
	for l := range strings.Lines(netns.IP(t, "-n", p.ns[0], "-o", "addr", "show", "dev", p.ifname[0])) {
		if slices.Contains(strings.Fields(l), "inet") || slices.Contains(strings.Fields(l), "inet6") {
			if f := strings.Fields(l); strings.HasPrefix(f[3], vip.String()+"/") {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// addrLabel is the label in an IPv4 line of `ip -o addr`: the last field,
// which -o ends with a backslash.
func addrLabel(line string) string {
	for _, f := range strings.Fields(line) {
		if l, ok := strings.CutSuffix(f, "\\"); ok {
			return l
		}
	}
	return ""
}

// neighMAC is the MAC B's neighbour table holds for vip.
func (p *pair) neighMAC(t *testing.T, vip netip.Addr) string {
	t.Helper()
	f := strings.Fields(netns.IP(t, "-n", p.ns[1], "neigh", "show", vip.String(), "dev", p.ifname[1]))
	if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// capture receives, on B's side of the veth, the frames of one ethertype
// that A sends and keep accepts.
type capture struct {
	frames chan []byte
}

func (p *pair) capture(t *testing.T, etherType uint16, keep func([]byte) bool) *capture {
	t.Helper()
	var fd int
	err := inNetns(p.ns[1], func() error {
		ifi, err := net.InterfaceByName(p.ifname[1])
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(etherType))); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// Wakes the reader to notice the end of the test.
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("capture in %s: %v", p.ns[1], err)
	}
	c := &capture{frames: make(chan []byte, 256)}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for !stop.Load() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			sll, ok := from.(*unix.SockaddrLinklayer)
			frame := buf[:n]
			if !ok || sll.Pkttype == unix.PACKET_OUTGOING || len(frame) < etherHeadLen ||
				!bytes.Equal(frame[6:12], macA) || !keep(frame) {
				continue
			}
			select {
			case c.frames <- slices.Clone(frame):
			default:
			}
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		<-done
		unix.Close(fd)
	})
	return c
}

// next returns the next frame, or nil after d.
func (c *capture) next(d time.Duration) []byte {
	select {
	case f := <-c.frames:
		return f
	case <-time.After(d):
		return nil
	}
}

// drain discards what has arrived.
func (c *capture) drain() {
	for {
		select {
		case <-c.frames:
		default:
			return
		}
	}
}

// announcing keeps a VIP's gratuitous ARPs or NAs (and A's answers to
// B's solicitations, which the tests do not provoke before counting).
func announcing(vip netip.Addr) func([]byte) bool {
	if vip.Is4() {
		return func(f []byte) bool {
			return len(f) >= etherHeadLen+arpLen && bytes.Equal(f[28:32], vip.AsSlice())
		}
	}
	return func(f []byte) bool {
		return len(f) >= etherHeadLen+ipv6HeadLen+naLen && f[20] == protoICMPv6 &&
			f[54] == icmpTypeNA && bytes.Equal(f[62:78], vip.AsSlice())
	}
}

// checkAnnouncement spells out the fields neighbours act on, then
// compares the whole frame.
func checkAnnouncement(t *testing.T, f []byte, vip netip.Addr, router bool) {
	t.Helper()
	if vip.Is4() {
		a := f[etherHeadLen:]
		switch {
		case !bytes.Equal(f[0:6], broadcastMAC):
			t.Errorf("GARP to %v, want broadcast", net.HardwareAddr(f[0:6]))
		case binary.BigEndian.Uint16(a[6:8]) != 1:
			t.Errorf("ARP operation %d, want 1 (request)", binary.BigEndian.Uint16(a[6:8]))
		case !bytes.Equal(a[8:14], macA):
			t.Errorf("sender MAC %v, want %v", net.HardwareAddr(a[8:14]), macA)
		case !bytes.Equal(a[14:18], vip.AsSlice()) || !bytes.Equal(a[24:28], vip.AsSlice()):
			t.Errorf("sender %v, target %v; want both %v", net.IP(a[14:18]), net.IP(a[24:28]), vip)
		}
		if want := garpFrame(macA, vip); !bytes.Equal(f, want) {
			t.Errorf("GARP\n got %x\nwant %x", f, want)
		}
		return
	}
	h := f[etherHeadLen:]
	m := h[ipv6HeadLen:]
	switch {
	case !bytes.Equal(f[0:6], allNodesMAC) || !bytes.Equal(h[24:40], allNodes.AsSlice()):
		t.Errorf("NA to %v (%v), want ff02::1", net.IP(h[24:40]), net.HardwareAddr(f[0:6]))
	case h[7] != 255:
		t.Errorf("hop limit %d, want 255", h[7])
	case m[4]&naFlagOverride == 0 || m[4]&0x40 != 0:
		t.Errorf("NA flags %#02x, want Override and not Solicited", m[4])
	case (m[4]&naFlagRouter != 0) != router:
		t.Errorf("NA flags %#02x, want Router %v", m[4], router)
	case len(m) < naPayloadLen || m[24] != optTargetLL || !bytes.Equal(m[26:32], macA):
		t.Errorf("NA options %x, want the target link-layer address %v", m[24:], macA)
	}
	if want := naFrame(macA, vip, router); !bytes.Equal(f, want) {
		t.Errorf("NA\n got %x\nwant %x", f, want)
	}
}

// udpReaches checks that a datagram from B to vip arrives at a socket A
// has bound to vip, which B can only do with A's MAC for it.
func (p *pair) udpReaches(t *testing.T, vip netip.Addr) {
	t.Helper()
	to := netip.AddrPortFrom(vip, 7777)
	var srv, cli *net.UDPConn
	// Binding at once is the point for IPv6: a tentative address (one
	// under DAD) cannot be bound.
	if err := inNetns(p.ns[0], func() (err error) {
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatalf("bind %v in A: %v", to, err)
	}
	defer srv.Close()
	if err := inNetns(p.ns[1], func() (err error) {
		cli, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatalf("dial %v from B: %v", to, err)
	}
	defer cli.Close()
	buf := make([]byte, 16)
	for range 25 {
		if _, err := cli.Write([]byte("ping")); err != nil {
			t.Fatalf("send to %v: %v", to, err)
		}
		srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := srv.ReadFromUDP(buf); err == nil && string(buf[:n]) == "ping" {
			return
		}
	}
	t.Errorf("no datagram from B reached %v in A", to)
}

// TestAcquireRelease takes a VIP in namespace A and checks, from the
// outside, everything a failover needs: the address on A's interface
// (with its prefix, label or NODAD), exactly Repeat well-formed
// announcements on the wire, B's neighbour entry moved from a stale MAC
// to A's, traffic from B arriving, and the address gone after Release;
// both directions idempotent.
func TestAcquireRelease(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	tests := []struct {
		name    string
		ifname  string
		vip     string
		prefix  string // Options.Prefixes
		want    string // in `ip addr`
		label   string // "": none (IPv6), else the label ip shows
		forward bool   // IPv6 forwarding on A's interface
	}{
		{name: "ipv4", ifname: "fna", vip: "10.77.0.100", want: "10.77.0.100/32", label: "fna:fulcrum"},
		{name: "ipv4 prefix", ifname: "fna", vip: "10.77.0.101", prefix: "10.77.0.101/24", want: "10.77.0.101/24", label: "fna:fulcrum"},
		// No room for a label: ip shows the interface's name.
		{name: "ipv4 long interface name", ifname: "fulcrum-netif0", vip: "10.77.0.102", want: "10.77.0.102/32", label: "fulcrum-netif0"},
		{name: "ipv6", ifname: "fna", vip: "fd00:77::100", want: "fd00:77::100/128"},
		{name: "ipv6 prefix", ifname: "fna", vip: "fd00:77::101", prefix: "fd00:77::101/64", want: "fd00:77::101/64"},
		{name: "ipv6 router", ifname: "fna", vip: "fd00:77::102", want: "fd00:77::102/128", forward: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, tt.ifname)
			vip := netip.MustParseAddr(tt.vip)
			netns.IP(t, "-n", p.ns[1], "neigh", "replace", vip.String(), "lladdr", bogusMAC, "dev", p.ifname[1], "nud", "stale")
			etherType := uint16(etherTypeARP)
			if vip.Is6() {
				etherType = etherTypeIPv6
			}
			capt := p.capture(t, etherType, announcing(vip))
			if tt.forward {
				if err := inNetns(p.ns[0], func() error {
					return os.WriteFile("/proc/sys/net/ipv6/conf/"+tt.ifname+"/forwarding", []byte("1"), 0)
				}); err != nil {
					t.Fatal(err)
				}
			}
			var opts Options
			if tt.prefix != "" {
				opts.Prefixes = []netip.Prefix{netip.MustParsePrefix(tt.prefix)}
			}
			a := p.announcer(t, opts)

			if err := a.Acquire(t.Context(), []netip.Addr{vip}); err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			lines := p.addrLines(t, vip)
			if len(lines) != 1 || strings.Fields(lines[0])[3] != tt.want {
				t.Fatalf("A's addresses for %v: %q, want one %s", vip, lines, tt.want)
			}
			fields := strings.Fields(lines[0])
			switch {
			case vip.Is4() && addrLabel(lines[0]) != tt.label:
				t.Errorf("address line %q: label %q, want %q", lines[0], addrLabel(lines[0]), tt.label)
			case vip.Is6() && (!slices.Contains(fields, "nodad") || slices.Contains(fields, "tentative")):
				t.Errorf("address line %q: want nodad and not tentative", lines[0])
			}

			for i := range DefaultRepeat {
				f := capt.next(5 * time.Second)
				if f == nil {
					t.Fatalf("B received %d announcements of %v, want %d", i, vip, DefaultRepeat)
				}
				checkAnnouncement(t, f, vip, tt.forward)
			}
			if f := capt.next(300 * time.Millisecond); f != nil {
				t.Errorf("B received more than %d announcements: %x", DefaultRepeat, f)
			}
			waitFor(t, "B's neighbour entry to move to A", 5*time.Second, func() bool {
				return p.neighMAC(t, vip) == macA.String()
			})
			p.udpReaches(t, vip)

			if err := a.Acquire(t.Context(), []netip.Addr{vip}); err != nil {
				t.Errorf("second Acquire: %v", err)
			}
			if lines := p.addrLines(t, vip); len(lines) != 1 {
				t.Errorf("after a second Acquire: %q, want one address", lines)
			}
			for i := range 2 {
				if err := a.Release(t.Context(), []netip.Addr{vip}); err != nil {
					t.Errorf("Release %d: %v", i+1, err)
				}
			}
			if lines := p.addrLines(t, vip); len(lines) != 0 {
				t.Errorf("after Release: %q, want none", lines)
			}
			// The second Acquire's repeats may still be due when Release
			// cancels them: its first announcement is all that is sure.
			got := a.Counters()
			sent, other := got.ARPSent, got.NASent
			if vip.Is6() {
				sent, other = other, sent
			}
			if got.Added != 1 || got.Removed != 1 || got.Errors != 0 || other != 0 ||
				sent < DefaultRepeat+1 || sent > 2*DefaultRepeat {
				t.Errorf("counters %+v, want 1 added, 1 removed, %d-%d announcements", got, DefaultRepeat+1, 2*DefaultRepeat)
			}
		})
	}
}

// TestReleaseCancelsRepeats: once Release returns, nothing more is
// announced, even with repeats and refreshes still due.
func TestReleaseCancelsRepeats(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	p := newPair(t, "fna")
	vip := netip.MustParseAddr("10.77.0.100")
	capt := p.capture(t, etherTypeARP, announcing(vip))
	a := p.announcer(t, Options{Repeat: 5, RepeatInterval: 200 * time.Millisecond, Refresh: 300 * time.Millisecond})
	if err := a.Acquire(t.Context(), []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(t.Context(), []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	if f := capt.next(5 * time.Second); f == nil {
		t.Fatal("B received no announcement")
	}
	if f := capt.next(time.Second); f != nil {
		t.Errorf("B received an announcement after Release: %x", f)
	}
	if got := a.Counters().ARPSent; got != 1 {
		t.Errorf("%d gratuitous ARPs sent, want 1", got)
	}
}

// TestRefresh: a held address is announced every Refresh period until it
// is released.
func TestRefresh(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	p := newPair(t, "fna")
	vip := netip.MustParseAddr("fd00:77::100")
	capt := p.capture(t, etherTypeIPv6, announcing(vip))
	a := p.announcer(t, Options{Repeat: 1, Refresh: 100 * time.Millisecond})
	if err := a.Acquire(t.Context(), []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if capt.next(5*time.Second) == nil {
			t.Fatalf("B received %d announcements, want 4", i)
		}
	}
	if err := a.Release(t.Context(), []netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	// What was on its way when Release returned has arrived by now.
	time.Sleep(50 * time.Millisecond)
	capt.drain()
	if f := capt.next(500 * time.Millisecond); f != nil {
		t.Errorf("B received an announcement after Release: %x", f)
	}
}

func TestMissingInterface(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	p := newPair(t, "fna")
	err := inNetns(p.ns[0], func() error {
		_, err := New(Options{Interface: "nosuch0"})
		return err
	})
	if !errors.Is(err, ErrNoInterface) || err.Error() != "netif: interface nosuch0: no such interface" {
		t.Errorf("New on a missing interface: got %v", err)
	}

	a := p.announcer(t, Options{})
	vip := []netip.Addr{netip.MustParseAddr("10.77.0.100")}
	if err := a.Acquire(t.Context(), vip); err != nil {
		t.Fatal(err)
	}
	netns.IP(t, "-n", p.ns[0], "link", "del", p.ifname[0])
	err = a.Acquire(t.Context(), vip)
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "interface fna") {
		t.Errorf("Acquire after the interface went: got %v", err)
	}
	if err := a.Release(t.Context(), vip); err != nil {
		t.Errorf("Release after the interface went: %v", err)
	}
	// Re-created, it has a new index, found by name.
	netns.IP(t, "-n", p.ns[0], "link", "add", p.ifname[0], "type", "veth", "peer", "name", "fnx")
	netns.IP(t, "-n", p.ns[0], "link", "set", "fnx", "up")
	netns.IP(t, "-n", p.ns[0], "link", "set", p.ifname[0], "up")
	if err := a.Acquire(t.Context(), vip); err != nil {
		t.Errorf("Acquire on the re-created interface: %v", err)
	}
	if lines := p.addrLines(t, vip[0]); len(lines) != 1 {
		t.Errorf("re-created interface's addresses for %v: %q, want one", vip[0], lines)
	}
}

// TestNoARP: on an interface that does not use ARP the addresses move
// and nothing is sent.
func TestNoARP(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	p := newPair(t, "fna")
	netns.IP(t, "-n", p.ns[0], "link", "set", p.ifname[0], "arp", "off")
	a := p.announcer(t, Options{})
	vips := []netip.Addr{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("fd00:77::100")}
	if err := a.Acquire(t.Context(), vips); err != nil {
		t.Fatal(err)
	}
	if c := a.Counters(); c.Added != 2 || c.ARPSent != 0 || c.NASent != 0 {
		t.Errorf("counters %+v, want 2 added and nothing sent", c)
	}
}

func TestLinkUp(t *testing.T) {
	netns.Require(t)
	t.Parallel()
	p := newPair(t, "fna")
	linkUp := func(ns, name string) (up bool, err error) {
		err = inNetns(ns, func() error { up, err = LinkUp(name); return err })
		return up, err
	}
	want := func(ns, name string, up bool) func() bool {
		return func() bool {
			got, err := linkUp(ns, name)
			if err != nil {
				t.Fatalf("LinkUp(%s): %v", name, err)
			}
			return got == up
		}
	}
	waitFor(t, "fna up", time.Second, want(p.ns[0], "fna", true))
	// A new namespace's loopback is down; up, it reports no operational
	// state, which counts as running.
	waitFor(t, "lo down", time.Second, want(p.ns[0], "lo", false))
	netns.IP(t, "-n", p.ns[0], "link", "set", "lo", "up")
	waitFor(t, "lo up", time.Second, want(p.ns[0], "lo", true))
	// The peer going down takes fna's carrier away.
	netns.IP(t, "-n", p.ns[1], "link", "set", p.ifname[1], "down")
	waitFor(t, "fna without carrier", 5*time.Second, want(p.ns[0], "fna", false))
	netns.IP(t, "-n", p.ns[1], "link", "set", p.ifname[1], "up")
	waitFor(t, "fna with carrier", 5*time.Second, want(p.ns[0], "fna", true))
	netns.IP(t, "-n", p.ns[0], "link", "set", p.ifname[0], "down")
	waitFor(t, "fna down", time.Second, want(p.ns[0], "fna", false))

	if _, err := linkUp(p.ns[0], "nosuch0"); !errors.Is(err, ErrNoInterface) {
		t.Errorf("LinkUp of a missing interface: got %v, want ErrNoInterface", err)
	}
}
