//go:build linux

package director

import (
	"bufio"
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
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and XDP")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
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
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (l *netLab) sysctl(ns, key, value string) {
	l.t.Helper()
	l.ip("netns", "exec", ns, "sysctl", "-qw", key+"="+value)
}

// ns creates a namespace, removed at cleanup.
func (l *netLab) ns(name string) string {
	l.t.Helper()
	ns := l.prefix + name
	l.ip("netns", "add", ns)
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// host creates a namespace with eth0 on the switch, at addr/24.
func (l *netLab) host(name, addr string) string {
	l.t.Helper()
	ns := l.ns(name)
	port := "p" + name
	l.ip("-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", l.sw, "link", "set", port, "master", "br0", "up")
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	return ns
}

// TestLabDirectRouting: a client's TCP connections to a VIP reach the
// two backends through the director's XDP program, with the client's own
// address, and the backends answer the client directly.
func TestLabDirectRouting(t *testing.T) {
	needRoot(t)
	const vip = "10.77.0.100"
	l := newNetLab(t)
	client := l.host("c", "10.77.0.1")
	dir := l.host("d", "10.77.0.2")
	l.ip("-n", dir, "addr", "add", vip+"/32", "dev", "eth0")
	backends := map[string]string{"10.77.0.11": l.host("b1", "10.77.0.11"), "10.77.0.12": l.host("b2", "10.77.0.12")}

	// The backends: the VIP on lo, not answering ARP for it, and a TCP
	// server on it that says which backend it is and whom it sees.
	type seen struct{ backend, client string }
	var mu sync.Mutex
	var log []seen
	for addr, ns := range backends {
		l.ip("-n", ns, "addr", "add", vip+"/32", "dev", "lo")
		for _, ifc := range []string{"all", "eth0"} {
			l.sysctl(ns, "net.ipv4.conf."+ifc+".arp_ignore", "1")
			l.sysctl(ns, "net.ipv4.conf."+ifc+".arp_announce", "2")
		}
		var ln net.Listener
		if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp4", vip+":80"); return }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				log = append(log, seen{addr, c.RemoteAddr().(*net.TCPAddr).IP.String()})
				mu.Unlock()
				fmt.Fprintf(c, "%s %s\n", addr, c.RemoteAddr())
				c.Close()
			}
		}()
	}

	var res netlinkResolver
	if err := netns.Do(dir, func() (err error) {
		res.h, err = netlink.NewHandle()
		return
	}); err != nil {
		t.Fatal(err)
	}
	res.dial = func(network, address string) (c net.Conn, err error) {
		err = netns.Do(dir, func() (err error) { c, err = net.Dial(network, address); return })
		return
	}
	var d *Director
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	if err := netns.Do(dir, func() (err error) {
		d, err = open(node{interfaces: []string{"eth0"}, mode: xdp.AttachGeneric, opts: xdp.Options{FlowTableSize: 4096}}, res, logger)
		return
	}); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close()
		}
	})
	if got := d.Status().Interfaces; len(got) != 1 || got[0] != (Interface{"eth0", "generic"}) {
		t.Fatalf("attached: got %+v, want eth0 generic", got)
	}
	var bs []*balancer.Backend
	for addr := range backends {
		bs = append(bs, balancer.NewBackend(netip.MustParseAddrPort(addr+":80"), 1, 0))
	}
	sp := ServiceSpec{Name: "web", VIP: netip.MustParseAddr(vip), Port: 80, Proto: 6, Mode: ModeDirect, Scheduler: "maglev"}
	s, err := d.AddService(sp, balancerService(t, "maglev", bs, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The next hops resolve within a few ticks of the loop.
	deadline := time.Now().Add(10 * time.Second)
	for !inRing(s, bs...) {
		if time.Now().After(deadline) {
			t.Fatal("backends not in the ring after 10s: their MACs were not resolved")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const conns = 20
	for i := range conns {
		var line string
		err := netns.Do(client, func() error {
			c, err := net.DialTimeout("tcp4", vip+":80", 5*time.Second)
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
		if f := strings.Fields(line); len(f) != 2 || !strings.HasPrefix(f[1], "10.77.0.1:") {
			t.Fatalf("connection %d: backend answered %q, want it to see the client 10.77.0.1", i, line)
		}
	}
	mu.Lock()
	per := map[string]int{}
	for _, e := range log {
		per[e.backend]++
		if e.client != "10.77.0.1" {
			t.Errorf("backend %s saw client %s, want 10.77.0.1", e.backend, e.client)
		}
	}
	mu.Unlock()
	if len(per) != 2 {
		t.Errorf("connections per backend: got %v, want both backends", per)
	}
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

	// Closing the director leaves nothing attached.
	closed = true
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "-n", dir, "-d", "link", "show", "eth0").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "xdp") {
		t.Errorf("after Close, eth0 still has an XDP program: %s", out)
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

// testWriter sends a logger's lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// BenchmarkKernelRebuild measures a full ring rebuild of ten backends
// and its write into the kernel's map.
func BenchmarkKernelRebuild(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: loads the XDP program")
	}
	prog, err := xdp.Load(xdp.Options{FlowTableSize: 1024})
	if err != nil {
		b.Skip(err)
	}
	defer prog.Close()
	pool := make([]*slot, 10)
	ws := make([]int32, 10)
	for i := range pool {
		pool[i] = &slot{id: uint32(i), b: balancer.NewBackend(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 80), 1, 0)}
		ws[i] = 1
	}
	for i := 0; b.Loop(); i++ {
		ws[0] = int32(1 + i%2) // a real change each time
		if err := prog.SetRing(0, buildRing(pool, ws)); err != nil {
			b.Fatal(err)
		}
	}
}
