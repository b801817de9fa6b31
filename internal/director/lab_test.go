//go:build linux

package director

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// netLab is a LAN in network namespaces: a switch (a bridge in a
// namespace of its own) and hosts with one interface, eth0, on it.
type netLab struct {
	t      *testing.T
	prefix string
	sw     string
}

func needRoot(t *testing.T) {
	t.Helper()
	netns.Require(t)
	if err := xdp.Supported(); err != nil {
		t.Skipf("the kernel cannot run the forwarder: %v", err)
	}
}

func newNetLab(t *testing.T) *netLab {
	l := &netLab{t: t, prefix: fmt.Sprintf("fd%d%04x", os.Getpid()%100000, rand.IntN(1<<16))}
	l.sw = l.ns("sw")
	l.ip("-n", l.sw, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.sw, "link", "set", "br0", "up")
	return l
}

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	netns.IP(l.t, args...)
}

func (l *netLab) sysctl(ns, key, value string) {
	l.t.Helper()
	l.ip("netns", "exec", ns, "sysctl", "-qw", key+"="+value)
}

// ns creates a namespace, removed at cleanup.
func (l *netLab) ns(name string) string {
	l.t.Helper()
	ns := l.prefix + name
	netns.Add(l.t, ns)
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// host creates a namespace with eth0 on the switch, at addr (a prefix).
func (l *netLab) host(name, addr string) string {
	l.t.Helper()
	ns := l.ns(name)
	port := "p" + name
	l.ip("-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", l.sw, "link", "set", port, "master", "br0", "up")
	l.addr(ns, addr, "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	return ns
}

// addr adds a prefix to an interface of ns, without duplicate address
// detection for IPv6 (so it is usable at once).
func (l *netLab) addr(ns, prefix, dev string) {
	l.t.Helper()
	args := []string{"-n", ns, "addr", "add", prefix, "dev", dev}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	l.ip(args...)
}

// drLab is a direct-routing LAN: a client, a director and two backends
// holding the VIP on lo without answering ARP for it.
type drLab struct {
	*netLab
	vip, clientAddr string
	client, dir     string
	backends        []string // addresses
	backendNS       map[string]string
}

func newDRLab(t *testing.T, subnet, bits, vip string) *drLab {
	needRoot(t)
	l := &drLab{netLab: newNetLab(t), vip: vip, clientAddr: subnet + "1", backendNS: map[string]string{}}
	v6 := strings.Contains(vip, ":")
	hostBits := "/32"
	if v6 {
		hostBits = "/128"
	}
	l.client = l.host("c", l.clientAddr+bits)
	l.dir = l.host("d", subnet+"2"+bits)
	// The director holds the VIP: it answers ARP for it (IPv4); IPv6
	// clients route the VIP through it, as backends answer neighbour
	// solicitations for any address of theirs.
	l.addr(l.dir, vip+hostBits, "eth0")
	if v6 {
		l.ip("-n", l.client, "-6", "route", "add", vip+"/128", "via", subnet+"2")
	}
	for i, name := range []string{"b1", "b2"} {
		addr := fmt.Sprintf("%s%d", subnet, 11+i)
		ns := l.host(name, addr+bits)
		l.addr(ns, vip+hostBits, "lo")
		for _, ifc := range []string{"all", "eth0"} {
			l.sysctl(ns, "net.ipv4.conf."+ifc+".arp_ignore", "1")
			l.sysctl(ns, "net.ipv4.conf."+ifc+".arp_announce", "2")
		}
		l.backends = append(l.backends, addr)
		l.backendNS[addr] = ns
	}
	return l
}

// director opens a director in the director's namespace, attached to its
// eth0 in generic mode; closed at cleanup unless the test closed it.
func (l *drLab) director(t *testing.T) *Director {
	t.Helper()
	var res netlinkResolver
	if err := netns.Do(l.dir, func() (err error) {
		res.h, err = netlink.NewHandle()
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.h.Close)
	res.dial = func(network, address string) (c net.Conn, err error) {
		err = netns.Do(l.dir, func() (err error) { c, err = net.Dial(network, address); return })
		return
	}
	var d *Director
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	if err := netns.Do(l.dir, func() (err error) {
		d, err = open(node{interfaces: []string{"eth0"}, mode: xdp.AttachGeneric, opts: xdp.Options{FlowTableSize: 4096}}, res, logger)
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// service programs sp (Port, Proto and persistence; the rest is filled
// in) on the VIP with the lab's backends and waits until the loop has
// resolved them into the ring.
func (l *drLab) service(t *testing.T, d *Director, sp ServiceSpec) (*Service, []*balancer.Backend) {
	t.Helper()
	var bs []*balancer.Backend
	for _, addr := range l.backends {
		bs = append(bs, balancer.NewBackend(netip.AddrPortFrom(netip.MustParseAddr(addr), sp.Port), 1, 0))
	}
	sp.Name = fmt.Sprintf("svc%d", sp.Port)
	sp.VIP, sp.Mode, sp.Scheduler = netip.MustParseAddr(l.vip), ModeDirect, "maglev"
	s, err := d.AddService(sp, balancerService(t, "maglev", bs, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !inRing(s, bs...) {
		if time.Now().After(deadline) {
			t.Fatal("backends not in the ring after 10s: their MACs were not resolved")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, bs
}

// TestLabDirectRouting: a client's TCP connections to a VIP reach the
// two backends through the director's XDP program (generic mode), with
// the client's own address, the backends answer the client directly,
// and the ring follows a backend going down.
func TestLabDirectRouting(t *testing.T) {
	tests := []struct {
		name, net, bits, vip string
	}{
		{"IPv4", "10.77.0.", "/24", "10.77.0.100"},
		{"IPv6", "fd77::", "/64", "fd77::100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testLabDirectRouting(t, newDRLab(t, tt.net, tt.bits, tt.vip))
		})
	}
}

func testLabDirectRouting(t *testing.T, l *drLab) {
	// Each backend's TCP server says which backend it is, and notes whom
	// it sees.
	type seen struct{ backend, client string }
	var mu sync.Mutex
	var log []seen
	for _, addr := range l.backends {
		serve(t, l.backendNS[addr], "tcp", net.JoinHostPort(l.vip, "80"), func(c net.Conn) {
			mu.Lock()
			log = append(log, seen{addr, c.RemoteAddr().(*net.TCPAddr).IP.String()})
			mu.Unlock()
			fmt.Fprintf(c, "%s\n", addr)
		})
	}
	d := l.director(t)
	if got := d.Status().Interfaces; len(got) != 1 || got[0] != (Interface{"eth0", "generic"}) {
		t.Fatalf("attached: got %+v, want eth0 generic", got)
	}
	s, bs := l.service(t, d, ServiceSpec{Port: 80, Proto: 6})

	connect := func(n int) map[string]int {
		t.Helper()
		per := map[string]int{}
		for i := range n {
			var line string
			err := netns.Do(l.client, func() error {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(l.vip, "80"), 5*time.Second)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err = bufio.NewReader(c).ReadString('\n')
				return err
			})
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			per[strings.TrimSpace(line)]++
		}
		return per
	}
	const conns = 20
	per := connect(conns)
	if len(per) != 2 {
		t.Errorf("connections per backend: got %v, want both backends", per)
	}
	mu.Lock()
	for _, e := range log {
		if e.client != l.clientAddr {
			t.Errorf("backend %s saw client %s, want %s", e.backend, e.client, l.clientAddr)
		}
	}
	mu.Unlock()
	var packets uint64
	for _, b := range bs {
		c := s.BackendCounters(b)
		packets += c.Packets
		if c.NewFlows != uint64(per[b.Addr.Addr().String()]) {
			t.Errorf("backend %s: kernel counted %d new flows, backend accepted %d", b.Addr, c.NewFlows, per[b.Addr.Addr().String()])
		}
	}
	if packets < 3*conns {
		t.Errorf("packets forwarded: got %d, want at least %d (SYN, ACK, FIN of each)", packets, 3*conns)
	}
	st := d.Status()
	if st.Counters["tx"] < packets {
		t.Errorf("status: tx %d < %d packets forwarded", st.Counters["tx"], packets)
	}
	// The flow count is at most a second old.
	for deadline := time.Now().Add(5 * time.Second); st.FlowEntries < conns && time.Now().Before(deadline); st = d.Status() {
		time.Sleep(100 * time.Millisecond)
	}
	if st.FlowEntries != conns {
		t.Errorf("status: %d flow entries, want %d", st.FlowEntries, conns)
	}

	// A backend goes down: every new connection goes to the other.
	bs[0].SetHealthy(false)
	s.Refresh()
	waitRing(t, s, bs[0], false)
	if per := connect(10); per[bs[1].Addr.Addr().String()] != 10 {
		t.Errorf("with %s down: connections per backend %v, want all 10 on %s", bs[0].Addr, per, bs[1].Addr)
	}

	// Closing the director leaves nothing attached.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "-n", l.dir, "-d", "link", "show", "eth0").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "xdp") {
		t.Errorf("after Close, eth0 still has an XDP program: %s", out)
	}
}

// TestLabFlowFollowsSlot: a UDP flow keeps its backend when the backend
// goes down (its slot stays valid: the quiescent case), moves to the
// other backend once CloseBackend marks the slot dead (after
// removal_grace), and stays there when the first comes back.
func TestLabFlowFollowsSlot(t *testing.T) {
	l := newDRLab(t, "10.78.0.", "/24", "10.78.0.100")
	const port = 9999
	for _, addr := range l.backends {
		var pc net.PacketConn
		if err := netns.Do(l.backendNS[addr], func() (err error) {
			pc, err = net.ListenPacket("udp4", net.JoinHostPort(l.vip, fmt.Sprint(port)))
			return
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(addr), from)
			}
		}()
	}
	d := l.director(t)
	s, bs := l.service(t, d, ServiceSpec{Port: port, Proto: 17})
	var c net.Conn
	if err := netns.Do(l.client, func() (err error) {
		c, err = net.Dial("udp4", net.JoinHostPort(l.vip, fmt.Sprint(port)))
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func() string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("who")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(buf[:n])
	}
	first := ask()
	var down, other *balancer.Backend
	for _, b := range bs {
		if b.Addr.Addr().String() == first {
			down = b
		} else {
			other = b
		}
	}
	if down == nil {
		t.Fatalf("answer %q is no backend's", first)
	}
	down.SetHealthy(false)
	s.Refresh()
	waitRing(t, s, down, false)
	if got := ask(); got != first {
		t.Fatalf("after its backend went down (slot still valid): answered by %s, want %s", got, first)
	}
	if n := s.CloseBackend(down); n != 1 {
		t.Errorf("CloseBackend: got %d flows, want 1", n)
	}
	want := other.Addr.Addr().String()
	if got := ask(); got != want {
		t.Fatalf("after CloseBackend: answered by %s, want %s", got, want)
	}
	down.SetHealthy(true)
	s.Refresh()
	waitRing(t, s, down, true)
	if got := ask(); got != want {
		t.Fatalf("after %s came back: answered by %s, want the flow to stay on %s", down.Addr, got, want)
	}
}

// TestLabPersistenceGroup: two services of one VIP in one persistence
// group send each client to one backend, whichever port it connects to.
func TestLabPersistenceGroup(t *testing.T) {
	l := newDRLab(t, "10.79.0.", "/24", "10.79.0.100")
	ports := []uint16{80, 443}
	for _, addr := range l.backends {
		for _, port := range ports {
			serve(t, l.backendNS[addr], "tcp4", net.JoinHostPort(l.vip, fmt.Sprint(port)), func(c net.Conn) {
				fmt.Fprintf(c, "%s\n", addr)
			})
		}
	}
	d := l.director(t)
	for _, port := range ports {
		l.service(t, d, ServiceSpec{Port: port, Proto: 6, PersistGroup: "shop", PersistTimeout: time.Minute, PersistBits4: 32, PersistBits6: 128})
	}
	// Clients at eight addresses: without the shared table, the chance
	// that each lands on one backend for both ports is 1/256.
	const clients = 8
	for i := range clients {
		l.addr(l.client, fmt.Sprintf("10.79.0.%d/24", 21+i), "eth0")
	}
	for i := range clients {
		src := &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("10.79.0.%d", 21+i))}
		var got []string
		for _, port := range ports {
			for range 2 {
				var line string
				err := netns.Do(l.client, func() error {
					dl := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
					c, err := dl.Dial("tcp4", net.JoinHostPort(l.vip, fmt.Sprint(port)))
					if err != nil {
						return err
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					line, err = bufio.NewReader(c).ReadString('\n')
					return err
				})
				if err != nil {
					t.Fatalf("client %s port %d: %v", src.IP, port, err)
				}
				got = append(got, strings.TrimSpace(line))
			}
		}
		for _, b := range got[1:] {
			if b != got[0] {
				t.Errorf("client %s: backends %v for ports %v (two connections each), want one backend", src.IP, got, ports)
				break
			}
		}
	}
}

// waitRing waits until b is in s's ring (in) or out of it.
func waitRing(t *testing.T, s *Service, b *balancer.Backend, in bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); inRing(s, b) != in; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("backend %s in the ring: still %v after 5s", b.Addr, !in)
		}
	}
}

// inRing reports whether every one of bs has ring entries in s.
func inRing(s *Service, bs ...*balancer.Backend) bool {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	c := shares(s.ring)
	for _, b := range bs {
		if sl := s.find(b); sl == nil || c[sl.id] == 0 {
			return false
		}
	}
	return true
}

// serve listens on network and addr in namespace ns until the test ends,
// handing each connection to fn and closing it after.
func serve(t *testing.T, ns, network, addr string, fn func(c net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fn(c)
			c.Close()
		}
	}()
}

// testWriter sends a logger's lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// BenchmarkKernelRebuild measures a ring rebuild of ten backends when
// one leaves or comes back (about a tenth of the entries change) and its
// write into the kernel's map: the whole ring ("whole", as before partial
// writes) or only the changed entries ("changed", what sync does), after
// the Maglev table alone ("build").
func BenchmarkKernelRebuild(b *testing.B) {
	prog := loadProgram(b)
	pool := make([]*slot, 10)
	ws := make([]int32, 10)
	for i := range pool {
		pool[i] = &slot{id: uint32(i), b: balancer.NewBackend(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 80), 1, 0)}
		ws[i] = 1
	}
	for _, mode := range []string{"build", "whole", "changed"} {
		b.Run(mode, func(b *testing.B) {
			prev := buildRing(pool, ws)
			if err := prog.SetRing(0, prev); err != nil {
				b.Fatal(err)
			}
			entries := 0
			for i := 0; b.Loop(); i++ {
				ws[9] = int32(i % 2) // a backend leaves, then comes back
				ring := buildRing(pool, ws)
				var err error
				switch mode {
				case "whole":
					err = prog.SetRing(0, ring)
					entries += len(ring)
				case "changed":
					var idx, slots []uint32
					for j, e := range ring {
						if e != prev[j] {
							idx, slots = append(idx, uint32(j)), append(slots, e)
						}
					}
					err = prog.SetRingEntries(0, idx, slots)
					entries += len(idx)
				}
				if err != nil {
					b.Fatal(err)
				}
				prev = ring
			}
			b.ReportMetric(float64(entries)/float64(b.N), "entries/op")
		})
	}
}

// loadProgram loads the XDP program (not attached anywhere), freed when
// the test ends.
func loadProgram(tb testing.TB) *xdp.Program {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads the XDP program")
	}
	if err := xdp.Supported(); err != nil {
		tb.Skipf("the kernel cannot run the forwarder: %v", err)
	}
	prog, err := xdp.Load(xdp.Options{MaxServices: maxServices, MaxSlots: maxSlots, FlowTableSize: 1024})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog
}

// TestKernelRingPartialWrites: TestRingPartialWrites with the loaded
// program: after each partial or whole write, the ring in the kernel's
// map is the computed one.
func TestKernelRingPartialWrites(t *testing.T) {
	prog := loadProgram(t)
	l := newLab(t)
	l.d = newDirector(prog, l.res, settings{flowTimeout: testFlowTimeout}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.d.now = l.clk.now
	ringSteps(t, l, func(id uint32) []uint32 {
		ring, err := prog.Ring(id)
		if err != nil {
			t.Fatal(err)
		}
		return ring
	})
}

// TestLabResolver: the netlink resolver finds the egress interface, the
// gateway and the gateway's MAC (after provoking its resolution) of a
// backend behind a router, the on-link MAC of a neighbour, and refuses
// an address of the host itself and one without a route.
func TestLabResolver(t *testing.T) {
	needRoot(t)
	l := newNetLab(t)
	dir := l.host("d", "10.80.0.1/24")
	router := l.host("r", "10.80.0.254/24")
	l.ip("-n", dir, "route", "add", "10.81.0.0/24", "via", "10.80.0.254", "mtu", "1300")
	l.ip("-n", dir, "link", "set", "eth0", "mtu", "1400")
	var res netlinkResolver
	if err := netns.Do(dir, func() (err error) {
		res.h, err = netlink.NewHandle()
		return
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.h.Close)
	res.dial = func(network, address string) (c net.Conn, err error) {
		err = netns.Do(dir, func() (err error) { c, err = net.Dial(network, address); return })
		return
	}
	var routerMAC, dirMAC string
	for ns, mac := range map[string]*string{router: &routerMAC, dir: &dirMAC} {
		if err := netns.Do(ns, func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err == nil {
				*mac = ifc.HardwareAddr.String()
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	far := netip.MustParseAddr("10.81.0.5")
	_, err := res.resolve(far)
	if !errors.Is(err, errUnresolved) {
		t.Fatalf("first lookup of %s: got %v, want %v", far, err, errUnresolved)
	}
	var h hop
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if h, err = res.resolve(far); !errors.Is(err, errUnresolved) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("lookup of %s after provoking: %v", far, err)
	}
	if h.gateway != netip.MustParseAddr("10.80.0.254") || h.dstMAC.String() != routerMAC || h.srcMAC.String() != dirMAC ||
		h.ifName != "eth0" || h.src != netip.MustParseAddr("10.80.0.1") || h.mtu != 1300 {
		t.Errorf("hop to %s: got %+v, want via 10.80.0.254 (%s) from eth0 10.80.0.1 (%s), the route's MTU 1300", far, h, routerMAC, dirMAC)
	}
	// The router is now a neighbour, on-link.
	if h, err = res.resolve(netip.MustParseAddr("10.80.0.254")); err != nil || h.gateway.IsValid() || h.dstMAC.String() != routerMAC || h.mtu != 1400 {
		t.Errorf("hop to the router: got %+v, %v; want on-link, %s, eth0's MTU 1400", h, err, routerMAC)
	}
	if _, err := res.resolve(netip.MustParseAddr("10.80.0.1")); err == nil || errors.Is(err, errUnresolved) {
		t.Errorf("own address: got %v, want an error", err)
	}
	if _, err := res.resolve(netip.MustParseAddr("192.0.2.1")); err == nil || errors.Is(err, errUnresolved) {
		t.Errorf("address without a route: got %v, want an error", err)
	}
}
