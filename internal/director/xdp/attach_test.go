//go:build linux

package xdp

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

func requireNetns(t *testing.T) {
	t.Helper()
	needBPF(t)
	netns.Require(t)
}

// namespaces makes n throwaway network namespaces, deleted when the test
// ends whatever happens.
func namespaces(t *testing.T, n int) []string {
	t.Helper()
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	var names []string
	for i := range n {
		name := fmt.Sprintf("fulcrum-xdp-%08x-%d-%d", h.Sum32(), os.Getpid(), i)
		netns.Add(t, name)
		names = append(names, name)
	}
	return names
}

// nativeVeth makes native XDP forwarding work over veths: a frame a
// native program sends out of a veth (XDP_TX or a redirect) reaches the
// peer only if the peer runs an XDP program too, so one that passes
// everything goes on dev in peerNS; and the client's partial checksums
// would stay unfinished, so tx checksum offload goes off on cliDev in
// cliNS. Skips t when ethtool cannot do that.
func nativeVeth(t *testing.T, peerNS, dev, cliNS, cliDev string) {
	t.Helper()
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	must(t, err)
	t.Cleanup(func() { pass.Close() })
	var l link.Link
	must(t, netns.Do(peerNS, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: pass, Interface: ifc.Index, Flags: link.XDPDriverMode})
		return err
	}))
	t.Cleanup(func() { l.Close() })
	if out, err := exec.Command("ip", "netns", "exec", cliNS, "ethtool", "-K", cliDev, "tx", "off").CombinedOutput(); err != nil {
		t.Skipf("ethtool -K %s tx off: %v: %s", cliDev, err, out)
	}
}

// kernelXDP asks the kernel what XDP program dev in ns has: "" for none,
// else "native", "generic" or another mode number.
func kernelXDP(t *testing.T, ns, dev string) string {
	t.Helper()
	var links []struct {
		XDP *struct {
			Mode int `json:"mode"`
		} `json:"xdp"`
	}
	out := netns.IP(t, "-n", ns, "-d", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip link show %s: %v: %s", dev, err, out)
	}
	if links[0].XDP == nil {
		return ""
	}
	switch links[0].XDP.Mode {
	case 1:
		return "native"
	case 2:
		return "generic"
	}
	return fmt.Sprint(links[0].XDP.Mode)
}

// vethPair makes two namespaces joined by a veth pair, dir0 in the first
// and cli0 in the second, both up.
func vethPair(t *testing.T) []string {
	t.Helper()
	ns := namespaces(t, 2)
	netns.IP(t, "-n", ns[0], "link", "add", "dir0", "type", "veth", "peer", "name", "cli0", "netns", ns[1])
	netns.IP(t, "-n", ns[0], "link", "set", "dir0", "up")
	netns.IP(t, "-n", ns[1], "link", "set", "cli0", "up")
	return ns
}

func TestAttachDetach(t *testing.T) {
	requireNetns(t)
	ns := vethPair(t)

	p, err := Load(Options{MaxServices: 2, MaxSlots: 4, FlowTableSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	in := func(fn func() error) {
		t.Helper()
		if err := netns.Do(ns[0], fn); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		mode AttachMode
		want string
	}{{AttachNative, "native"}, {AttachGeneric, "generic"}, {AttachAuto, "native"}} {
		var got AttachMode
		in(func() (err error) { got, err = p.Attach("dir0", tc.mode); return err })
		if got.String() != tc.want {
			t.Errorf("Attach(%s) got %s, want %s", tc.mode, got, tc.want)
		}
		if k := kernelXDP(t, ns[0], "dir0"); k != tc.want {
			t.Errorf("after Attach(%s) the kernel says %q, want %q", tc.mode, k, tc.want)
		}
		if m := p.Attached(); m["dir0"].String() != tc.want {
			t.Errorf("Attached() = %v", m)
		}
		in(func() error {
			if _, err := p.Attach("dir0", tc.mode); err == nil {
				t.Errorf("a second Attach on dir0 succeeded")
			}
			return nil
		})
		if err := p.Detach("dir0"); err != nil {
			t.Fatal(err)
		}
		if k := kernelXDP(t, ns[0], "dir0"); k != "" {
			t.Errorf("after Detach the kernel has a %s program on dir0", k)
		}
	}

	// Close detaches everything.
	in(func() error { _, err := p.Attach("dir0", AttachGeneric); return err })
	if err := netns.Do(ns[1], func() error { _, err := p.Attach("cli0", AttachNative); return err }); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for i, dev := range []string{"dir0", "cli0"} {
		if k := kernelXDP(t, ns[i], dev); k != "" {
			t.Errorf("after Close the kernel has a %s program on %s", k, dev)
		}
	}
	in(func() error {
		if _, err := p.Attach("nonexistent0", AttachAuto); err == nil {
			t.Error("Attach to a missing interface succeeded")
		}
		return nil
	})
}

// TestDirectRoutingOnVeth forwards real packets: a client namespace sends
// UDP to the VIP through the director's namespace, whose XDP program
// redirects them to a backend namespace holding the VIP on lo; the backend
// must see the client's own address.
func TestDirectRoutingOnVeth(t *testing.T) {
	requireNetns(t)
	for _, mode := range []AttachMode{AttachGeneric, AttachNative} {
		t.Run(mode.String(), func(t *testing.T) { directRoutingOnVeth(t, mode) })
	}
}

func directRoutingOnVeth(t *testing.T, mode AttachMode) {
	ns := namespaces(t, 3) // client, director, backend
	cli, dir, be := ns[0], ns[1], ns[2]
	netns.IP(t, "-n", cli, "link", "add", "cli0", "type", "veth", "peer", "name", "dir0", "netns", dir)
	netns.IP(t, "-n", be, "link", "add", "be0", "type", "veth", "peer", "name", "dir1", "netns", dir)
	for _, c := range [][]string{
		{cli, "addr", "add", "10.88.0.1/24", "dev", "cli0"},
		{dir, "addr", "add", "10.88.0.2/24", "dev", "dir0"},
		{dir, "addr", "add", "10.88.1.1/24", "dev", "dir1"},
		{be, "addr", "add", "10.88.1.2/24", "dev", "be0"},
		{be, "addr", "add", "10.88.9.9/32", "dev", "lo"}, // the VIP, on the backend
		{cli, "link", "set", "cli0", "up"}, {dir, "link", "set", "dir0", "up"},
		{dir, "link", "set", "dir1", "up"}, {be, "link", "set", "be0", "up"}, {be, "link", "set", "lo", "up"},
		{cli, "route", "add", "10.88.9.9/32", "via", "10.88.0.2"},
		{be, "route", "add", "default", "via", "10.88.1.1"},
	} {
		netns.IP(t, append([]string{"-n", c[0]}, c[1:]...)...)
	}
	vip := netip.MustParseAddr("10.88.9.9")
	var dir1, be0 *net.Interface
	var err error
	if err := netns.Do(dir, func() error { dir1, err = net.InterfaceByName("dir1"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := netns.Do(be, func() error { be0, err = net.InterfaceByName("be0"); return err }); err != nil {
		t.Fatal(err)
	}

	p, err := Load(Options{MaxServices: 2, MaxSlots: 4, FlowTableSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	must(t, p.SetReal(0, Real{Addr: netip.MustParseAddr("10.88.1.2"), DstMAC: be0.HardwareAddr,
		SrcMAC: dir1.HardwareAddr, IfIndex: dir1.Index}))
	must(t, p.SetService(ServiceKey{Addr: vip, Port: 5353, Proto: protoUDP}, Service{ID: 0, Mode: ModeDirect}))
	must(t, p.SetRing(0, fill(0)))
	if err := netns.Do(dir, func() error { _, err := p.Attach("dir0", mode); return err }); err != nil {
		t.Fatal(err)
	}
	if mode == AttachNative {
		nativeVeth(t, be, "be0", cli, "cli0")
	}

	var srv *net.UDPConn
	if err := netns.Do(be, func() (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: vip.AsSlice(), Port: 5353})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var c *net.UDPConn
	if err := netns.Do(cli, func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: vip.AsSlice(), Port: 5353})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The first datagrams may wait for ARP and the veth carrier: send
	// until one arrives.
	got := make(chan *net.UDPAddr, 1)
	go func() {
		buf := make([]byte, 100)
		srv.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, from, err := srv.ReadFromUDP(buf)
		if err == nil {
			got <- from
		}
		close(got)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var from *net.UDPAddr
wait:
	for {
		select {
		case from = <-got:
			break wait
		case <-tick.C:
			c.Write([]byte("hello"))
		}
	}
	if from == nil {
		g, _ := p.Global()
		t.Fatalf("the backend received nothing; counters %v", g)
	}
	if want := c.LocalAddr().(*net.UDPAddr); !from.IP.Equal(want.IP) || from.Port != want.Port {
		t.Errorf("the backend saw the datagram from %s, want the client's %s", from, want)
	}
	g, err := p.Global()
	must(t, err)
	if g["redirect"] == 0 || g["flows_new"] != 1 {
		t.Errorf("counters %v: want redirects and 1 new flow", g)
	}
}

// TestTunnelTooBigEgressMTU lets the program ask the kernel for the egress
// interface's MTU (Real.MTU 0): PROG_TEST_RUN runs it on the lo of the
// calling thread's namespace, here a throwaway one with lo's MTU at 1500.
func TestTunnelTooBigEgressMTU(t *testing.T) {
	requireNetns(t)
	ns := namespaces(t, 1)[0]
	netns.IP(t, "-n", ns, "link", "set", "lo", "mtu", "1500", "up")
	l := newLab(t, Options{})
	l.standard()
	fits := ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4t, protoTCP, tcp(1000, 80, make([]byte, 1500-20-20-20)), v4opts{}))
	big := ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4t, protoTCP, tcp(1001, 80, make([]byte, 1500-20-20-20+1)), v4opts{}))
	big6 := ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6t, protoTCP, tcp(1001, 80, make([]byte, 1500-40-20-40+1)), 0, 0))
	// Run, not l.run: no t.Fatal on the namespace's goroutine.
	var verdicts []uint32
	before := l.global()
	if err := netns.Do(ns, func() error {
		for _, pkt := range [][]byte{fits, big, big6} {
			v, err := l.p.objs.FulcrumXdp.Run(&ebpf.RunOptions{Data: pkt})
			if err != nil {
				return err
			}
			verdicts = append(verdicts, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{xdpTX, xdpPass, xdpPass}; !slices.Equal(verdicts, want) {
		t.Errorf("verdicts %v, want %v (TX, PASS, PASS)", verdicts, want)
	}
	if d := delta(before, l.global()); d["passed_too_big"] != 2 || d["tx"] != 1 {
		t.Errorf("counters moved %v, want passed_too_big 2, tx 1", d)
	}
}

// TestDirectRoutingOneArm is LVS-DR as the tutorials draw it: client,
// director and backend on one Ethernet segment (a bridge). The director's
// program sends the client's TCP segments back out of the interface they
// came in by (XDP_TX) to the backend's MAC; the backend, holding the VIP on
// lo, answers the client directly. A whole TCP exchange must work, and the
// backend must see the client's address.
func TestDirectRoutingOneArm(t *testing.T) {
	requireNetns(t)
	for _, mode := range []AttachMode{AttachGeneric, AttachNative} {
		t.Run(mode.String(), func(t *testing.T) { directRoutingOneArm(t, mode) })
	}
}

func directRoutingOneArm(t *testing.T, mode AttachMode) {
	ns := namespaces(t, 4) // switch, client, director, backend
	sw, cli, dir, be := ns[0], ns[1], ns[2], ns[3]
	vip := netip.MustParseAddr("10.89.0.100")
	netns.IP(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	netns.IP(t, "-n", sw, "link", "set", "br0", "up")
	for i, host := range []string{cli, dir, be} {
		port := fmt.Sprintf("p%d", i)
		netns.IP(t, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host)
		netns.IP(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		netns.IP(t, "-n", host, "addr", "add", fmt.Sprintf("10.89.0.%d/24", i+1), "dev", "eth0")
		netns.IP(t, "-n", host, "link", "set", "eth0", "up")
		netns.IP(t, "-n", host, "link", "set", "lo", "up")
	}
	netns.IP(t, "-n", be, "addr", "add", vip.String()+"/32", "dev", "lo")
	netns.IP(t, "-n", cli, "route", "add", vip.String()+"/32", "via", "10.89.0.2")

	iface := func(ns string) *net.Interface {
		var ifc *net.Interface
		must(t, netns.Do(ns, func() (err error) { ifc, err = net.InterfaceByName("eth0"); return err }))
		return ifc
	}
	dirIf, beIf := iface(dir), iface(be)

	p, err := Load(Options{MaxServices: 2, MaxSlots: 4, FlowTableSize: 64})
	must(t, err)
	t.Cleanup(func() { p.Close() })
	must(t, p.SetReal(0, Real{Addr: netip.MustParseAddr("10.89.0.3"), DstMAC: beIf.HardwareAddr,
		SrcMAC: dirIf.HardwareAddr, IfIndex: dirIf.Index}))
	must(t, p.SetService(ServiceKey{Addr: vip, Port: 8080, Proto: protoTCP}, Service{ID: 0, Mode: ModeDirect}))
	must(t, p.SetRing(0, fill(0)))
	must(t, netns.Do(dir, func() error { _, err := p.Attach("eth0", mode); return err }))
	if mode == AttachNative {
		nativeVeth(t, sw, "p1", cli, "eth0")
	}

	var ln net.Listener
	must(t, netns.Do(be, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(vip, 8080).String())
		return err
	}))
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Tell the client whom the backend sees.
			c.Write([]byte(c.RemoteAddr().String() + "\n"))
			c.Close()
		}
	}()

	var c net.Conn
	must(t, netns.Do(cli, func() (err error) {
		d := net.Dialer{Timeout: 20 * time.Second}
		c, err = d.Dial("tcp4", netip.AddrPortFrom(vip, 8080).String())
		return err
	}))
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		g, _ := p.Global()
		t.Fatalf("read from the backend: %v; counters %v", err, g)
	}
	if got, want := strings.TrimSpace(string(buf[:n])), c.LocalAddr().String(); got != want {
		t.Errorf("the backend saw the client as %s, want %s", got, want)
	}
	g, err := p.Global()
	must(t, err)
	if g["tx"] < 2 || g["flows_new"] != 1 || g["redirect"] != 0 {
		t.Errorf("counters %v: want the handshake's segments sent by XDP_TX, 1 new flow", g)
	}
}

// TestIfMACLargeIndex checks the interface-MAC check for an interface
// whose index is past the ifmacs array (it lives in ifmacs_big) and for
// one in the array after its entry is cleared: a frame to the interface's
// MAC is forwarded, the same frame after clearIfMAC goes to the kernel.
func TestIfMACLargeIndex(t *testing.T) {
	requireNetns(t)
	ns := namespaces(t, 1)[0]
	const big = ifmacArray + 904
	netns.IP(t, "-n", ns, "link", "add", "name", "big0", "index", fmt.Sprint(big), "address", dirMAC.String(), "type", "veth", "peer", "name", "big1")
	netns.IP(t, "-n", ns, "link", "set", "big0", "up")
	netns.IP(t, "-n", ns, "link", "set", "big1", "up")
	netns.IP(t, "-n", ns, "link", "set", "lo", "up")
	l := newLab(t, Options{})
	l.standard()
	pkt := pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{})
	run := func(ifindex uint32) uint32 {
		t.Helper()
		var v uint32
		if err := netns.Do(ns, func() error {
			var err error
			v, err = l.p.objs.FulcrumXdp.Run(&ebpf.RunOptions{
				Data:    pkt,
				Context: [6]uint32{0, uint32(len(pkt)), 0, ifindex, 0, 0},
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name    string
		ifindex int
	}{{"large index", big}, {"array index", loIndex}} {
		if c.ifindex != loIndex {
			must(t, l.p.setIfMAC(c.ifindex, dirMAC))
		}
		before := l.global()
		if v := run(uint32(c.ifindex)); v == xdpPass {
			t.Errorf("%s: MAC set: verdict PASS, want forwarded", c.name)
		}
		must(t, l.p.clearIfMAC(c.ifindex))
		if v := run(uint32(c.ifindex)); v != xdpPass {
			t.Errorf("%s: MAC cleared: verdict %d, want PASS", c.name, v)
		}
		if d := delta(before, l.global()); d["passed_not_local"] != 1 {
			t.Errorf("%s: counters moved %v, want passed_not_local 1", c.name, d)
		}
	}
}
