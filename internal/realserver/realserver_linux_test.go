package realserver

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap/decaptest"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

var (
	vip4    = netip.MustParseAddr("192.0.2.200")
	vip6    = netip.MustParseAddr("2001:db8::200")
	client4 = netip.MustParseAddr("198.51.100.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")
)

func TestParseMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want xdp.Mode
		err  string
	}{
		{"direct", xdp.ModeDirect, ""}, {"gate", xdp.ModeDirect, ""}, {"dr", xdp.ModeDirect, ""}, {"droute", xdp.ModeDirect, ""},
		{"tunnel", xdp.ModeTunnel, ""}, {"ipip", xdp.ModeTunnel, ""}, {"tun", xdp.ModeTunnel, ""},
		{"masq", 0, "NAT is not offered"}, {"NAT", 0, "NAT is not offered"}, {"masquerading", 0, "NAT is not offered"},
		{"proxy", 0, "want direct"}, {"", 0, "want direct"}, {"Direct", 0, "want direct"},
	} {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, error with %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestDirect: the VIP goes on lo, the real server stops answering ARP for
// it, up is idempotent, status sees a reset sysctl, and down restores the
// namespace exactly, leaving an address that was there before.
func TestDirect(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParseAddr("192.0.2.201")
	before := netip.MustParseAddr("192.0.2.202") // on lo before up: not ours

	// Control: with the kernel's defaults a VIP on lo is answered for, so
	// the ARP check below can fail.
	netns.IP(t, "-n", l.rs, "addr", "add", vip.String()+"/32", "dev", "lo")
	if got := l.answered(t, vip); !slices.Contains(got, vip) {
		t.Fatalf("with arp_ignore 0 the real server did not answer ARP for %s on lo: the check is blind", vip)
	}
	netns.IP(t, "-n", l.rs, "addr", "del", vip.String()+"/32", "dev", "lo")
	netns.IP(t, "-n", l.rs, "addr", "add", before.String()+"/32", "dev", "lo")
	snap := l.snapshot(t)

	out := l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip, before, vip6}})
	t.Logf("up:\n%s", out)
	for _, want := range []string{
		"sysctl net.ipv4.conf.all.arp_ignore: 0 -> 1",
		"sysctl net.ipv4.conf.vr.arp_ignore: 0 -> 1",
		"sysctl net.ipv4.conf.all.arp_announce: 0 -> 2",
		"sysctl net.ipv4.conf.vr.arp_announce: 0 -> 2",
		"address 192.0.2.201/32 added to lo",
		"address 2001:db8::200/128 added to lo",
		"unchanged: address 192.0.2.202/32 on lo",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q", want)
		}
	}
	if got := l.answered(t, vip, before); len(got) != 0 {
		t.Errorf("the real server answered ARP for %v", got)
	}
	if a := netns.IP(t, "-n", l.rs, "-o", "addr", "show", "dev", "lo"); !strings.Contains(a, "192.0.2.201/32") || !strings.Contains(a, "lo:fulcrum") {
		t.Errorf("lo: %s, want 192.0.2.201/32 labelled lo:fulcrum", a)
	}

	again := l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip, before, vip6}})
	for line := range strings.Lines(again) {
		if !strings.HasPrefix(line, "unchanged: ") {
			t.Errorf("second up changed something: %q", line)
		}
	}

	if r := l.check(t); !r.OK() {
		t.Errorf("status after up: %+v", r.Checks)
	}
	l.setSysctl(t, "all", arpIgnore, "0")
	l.setSysctl(t, "vr", arpIgnore, "0")
	r := l.check(t)
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.What)
		}
	}
	if want := []string{"net.ipv4.conf.all.arp_ignore = 1 or 2 or 8", "net.ipv4.conf.vr.arp_ignore = 1 or 2 or 8"}; !slices.Equal(failed, want) {
		t.Errorf("status after arp_ignore reset: failed %q, want %q", failed, want)
	}
	if out := l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip}}); !strings.Contains(out, "net.ipv4.conf.all.arp_ignore: 0 -> 1") {
		t.Errorf("up after reset:\n%s", out)
	}
	st := l.loadState(t)
	if c := st.find(Change{Kind: KindSysctl, Path: confPath("all", arpIgnore)}); c == nil || c.Old != "0" {
		t.Errorf("record of all.arp_ignore %+v, want old 0 kept", c)
	}

	out = l.down(t)
	t.Logf("down:\n%s", out)
	if got := l.snapshot(t); got != snap {
		t.Errorf("down did not restore the namespace:\nbefore\n%s\nafter\n%s", snap, got)
	}
	if fileExists(l.state) {
		t.Errorf("state file left after down")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestTunnel: a director tunnels a client's UDP datagram to the VIP in
// each of the four encapsulations; a listener on the VIP in the real
// server receives it with the client's own address. Then down restores
// the namespace, XDP program included.
func TestTunnel(t *testing.T) {
	for _, mode := range []xdplink.Mode{xdplink.Generic, xdplink.Native} {
		t.Run(mode.String(), func(t *testing.T) { testTunnel(t, mode) })
	}
}

func testTunnel(t *testing.T, xdpMode xdplink.Mode) {
	l := newLab(t)
	l.setSysctl(t, "all", rpFilter, "1") // strict, as many distributions set it
	snap := l.snapshot(t)

	out := l.up(t, Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4, vip6}, Decap: DecapEBPF, XDPMode: xdpMode})
	t.Logf("up:\n%s", out)
	for _, want := range []string{
		"sysctl net.ipv4.conf.vr.rp_filter: 0 -> 2",
		"route default via 10.78.0.1 dev vr: advmss 0 -> 1420",
		"route default via fd00:78::1 metric 1024 dev vr: advmss 0 -> 1400",
		"xdp decapsulator (program id ",
		"attached to vr in " + xdpMode.String() + " mode",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q", want)
		}
	}
	if link := netns.IP(t, "-n", l.rs, "-d", "link", "show", "dev", "vr"); !strings.Contains(link, "xdp") {
		t.Errorf("ip link shows no xdp program on vr:\n%s", link)
	}

	var conns [2]*net.UDPConn
	in(t, l.rs, func() error {
		for i, v := range []netip.Addr{vip4, vip6} {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(v, 5353)))
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			conns[i] = c
		}
		return nil
	})
	fd, ifindex := l.packetSocket(t, 0)
	for _, tc := range []struct {
		name          string
		outer, client netip.Addr
		conn          int
		vip           netip.Addr
	}{
		{"ipip", rs4, client4, 0, vip4},
		{"6in4", rs4, client6, 1, vip6},
		{"4in6", rs6, client4, 0, vip4},
		{"ip6ip6", rs6, client6, 1, vip6},
	} {
		from := dir4
		if tc.outer.Is6() {
			from = dir6
		}
		client := netip.AddrPortFrom(tc.client, 40000)
		payload := []byte("hello " + tc.name)
		inner := decaptest.UDP(client, netip.AddrPortFrom(tc.vip, 5353), 0, payload)
		send(t, fd, ifindex, decaptest.Tunnel(macR, macD, from, tc.outer, 0, inner))

		c := conns[tc.conn]
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1500)
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Errorf("%s: the listener on %s received nothing: %v", tc.name, tc.vip, err)
			continue
		}
		if src.Addr().Unmap() != tc.client || src.Port() != 40000 || string(buf[:n]) != string(payload) {
			t.Errorf("%s: got %q from %s, want %q from %s", tc.name, buf[:n], src, payload, client)
		}
	}

	// A client's SYN, tunnelled, is answered by a SYN-ACK straight to the
	// client whose MSS leaves room for the outer header: 1500 less 40
	// (vr has an IPv6 address, so the outer header may be IPv6) less
	// the inner IP and TCP headers.
	in(t, l.rs, func() error {
		for _, v := range []netip.Addr{vip4, vip6} {
			ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(v, 80)))
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
		}
		return nil
	})
	capture, _ := l.packetSocket(t, unix.ETH_P_ALL)
	for _, tc := range []struct {
		outer, client, vip netip.Addr
		mss                int
	}{
		{rs4, client4, vip4, 1500 - 40 - 40},
		{rs6, client6, vip6, 1500 - 40 - 60},
	} {
		from := dir4
		if tc.outer.Is6() {
			from = dir6
		}
		client, vip := netip.AddrPortFrom(tc.client, 40001), netip.AddrPortFrom(tc.vip, 80)
		send(t, fd, ifindex, decaptest.Tunnel(macR, macD, from, tc.outer, 0, decaptest.TCPSyn(client, vip, 1, 1460)))
		if got := synAckMSS(t, capture, vip, client); got != tc.mss {
			t.Errorf("SYN-ACK from %s offers MSS %d, want %d", vip, got, tc.mss)
		}
	}

	r := l.check(t)
	if !r.OK() {
		t.Errorf("status: %+v", r.Checks)
	}
	for _, k := range []string{"decap_4in6", "decap_6in4"} {
		if r.Decap[k] != 1 {
			t.Errorf("counter %s = %d, want 1 (%v)", k, r.Decap[k], r.Decap)
		}
	}
	for _, k := range []string{"decap_4in4", "decap_6in6"} {
		if r.Decap[k] != 2 {
			t.Errorf("counter %s = %d, want 1 (%v)", k, r.Decap[k], r.Decap)
		}
	}

	// A second up leaves the program as it is.
	again := l.up(t, Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4, vip6}, Decap: DecapEBPF, XDPMode: xdpMode})
	for line := range strings.Lines(again) {
		if !strings.HasPrefix(line, "unchanged: ") {
			t.Errorf("second up changed something: %q", line)
		}
	}

	out = l.down(t)
	t.Logf("down:\n%s", out)
	if !strings.Contains(out, "detached from vr") {
		t.Errorf("down printed no detach")
	}
	if got := l.snapshot(t); got != snap {
		t.Errorf("down did not restore the namespace:\nbefore\n%s\nafter\n%s", snap, got)
	}
}

// TestTunnelSomeoneDetached: status notices a program detached by hand,
// and up attaches a new one.
func TestTunnelSomeoneDetached(t *testing.T) {
	l := newLab(t)
	l.up(t, Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4}, Decap: DecapEBPF, XDPMode: xdplink.Generic})
	netns.IP(t, "-n", l.rs, "link", "set", "dev", "vr", "xdpgeneric", "off")
	r := l.check(t)
	if r.OK() {
		t.Fatalf("status after the program was detached: all OK")
	}
	out := l.up(t, Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4}, XDPMode: xdplink.Generic})
	if !strings.Contains(out, "xdp decapsulator (program id ") {
		t.Errorf("up did not attach again:\n%s", out)
	}
	if r := l.check(t); !r.OK() {
		t.Errorf("status: %+v", r.Checks)
	}
	l.down(t)
	if link := netns.IP(t, "-n", l.rs, "-d", "link", "show", "dev", "vr"); strings.Contains(link, "xdp") {
		t.Errorf("xdp left on vr after down:\n%s", link)
	}
}

// TestDecapKernelUnavailable: on a kernel without the ipip module, auto
// picks ebpf and kernel is a clear error.
func TestDecapKernelUnavailable(t *testing.T) {
	if kernelDecap() == nil {
		t.Skip("this kernel has the ipip module")
	}
	l := newLab(t)
	var out strings.Builder
	var err error
	in(t, l.rs, func() error {
		_, err = Up(Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4}, Decap: DecapKernel, StatePath: l.state}, &out)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "modprobe ipip") || !strings.Contains(err.Error(), "--decap ebpf") {
		t.Errorf("up --decap kernel: %v, want an error naming modprobe ipip and --decap ebpf", err)
	}
	l.up(t, Options{Mode: xdp.ModeTunnel, VIPs: []netip.Addr{vip4}})
	if st := l.loadState(t); st.Decap != "ebpf" {
		t.Errorf("auto chose %q, want ebpf", st.Decap)
	}
	l.down(t)
}

// TestStatePerNetns: each network namespace has its own default state
// file, and a state written in one is refused in another.
func TestStatePerNetns(t *testing.T) {
	l := newLab(t)
	var inRS, inDir string
	in(t, l.rs, func() error { inRS = orDefault(""); return nil })
	in(t, l.dir, func() error { inDir = orDefault(""); return nil })
	if inRS == inDir || !strings.HasPrefix(inRS, "/run/fulcrum/realserver-netns-") || inRS == DefaultStatePath {
		t.Errorf("default state paths: real server %s, director %s: want two of their own", inRS, inDir)
	}
	l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip4}})
	var err error
	in(t, l.dir, func() error { _, err = Check(l.state); return nil })
	if err == nil || !strings.Contains(err.Error(), "was written in network namespace") {
		t.Errorf("status of the real server's state from the director's namespace: %v", err)
	}
	l.down(t)
}

// TestInterfaceWithoutDefaultRoute: with no default route, the one
// interface with an address faces the director.
func TestInterfaceWithoutDefaultRoute(t *testing.T) {
	l := newLab(t)
	netns.IP(t, "-n", l.rs, "route", "del", "default")
	netns.IP(t, "-n", l.rs, "-6", "route", "del", "default")
	out := l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip4}})
	if !strings.Contains(out, "net.ipv4.conf.vr.arp_ignore: 0 -> 1") {
		t.Errorf("up without a default route:\n%s", out)
	}
	l.down(t)
}

// TestConcurrentUp: two ups at once, each with a VIP of its own, both
// land in the one state file, and down removes both.
func TestConcurrentUp(t *testing.T) {
	l := newLab(t)
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.211"), netip.MustParseAddr("192.0.2.212")}
	errs := make(chan error, len(vips))
	for _, v := range vips {
		go func() {
			errs <- netns.Do(l.rs, func() error {
				_, err := Up(Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{v}, StatePath: l.state}, io.Discard)
				return err
			})
		}()
	}
	for range vips {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := l.loadState(t)
	for _, v := range vips {
		if st.find(Change{Kind: KindAddress, Interface: VIPInterface, Prefix: VIPPrefix(v)}) == nil {
			t.Errorf("state lost the address change of %s: %+v", v, st.Changes)
		}
	}
	var sysctls int
	for _, c := range st.Changes {
		if c.Kind == KindSysctl {
			sysctls++
		}
	}
	if sysctls != 4 {
		t.Errorf("%d sysctl changes recorded, want 4 (all and vr, arp_ignore and arp_announce, once each)", sysctls)
	}
	out := l.down(t)
	for _, v := range vips {
		if !strings.Contains(out, "address "+v.String()+"/32 removed from lo") {
			t.Errorf("down did not remove %s:\n%s", v, out)
		}
	}
}

// TestStaleState: a state file left by a namespace that is gone, whose
// inode this one now has, is ignored by up and removed by down.
func TestStaleState(t *testing.T) {
	l := newLab(t)
	l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip4}})
	st := l.loadState(t)
	if st.Netns == 0 || st.NetnsCookie == 0 {
		t.Fatalf("state without its namespace's identity: inode %d, cookie %d", st.Netns, st.NetnsCookie)
	}
	l.down(t)

	st.NetnsCookie++ // as if written by an earlier namespace
	if err := st.save(l.state); err != nil {
		t.Fatal(err)
	}
	var err error
	in(t, l.rs, func() error { _, err = Check(l.state); return nil })
	if !errors.Is(err, ErrStaleState) {
		t.Errorf("status of a stale state: %v, want ErrStaleState", err)
	}
	out := l.up(t, Options{Mode: xdp.ModeDirect, VIPs: []netip.Addr{vip6}})
	if !strings.Contains(out, "ignoring") || l.loadState(t).find(Change{Kind: KindAddress, Interface: VIPInterface, Prefix: VIPPrefix(vip4)}) != nil {
		t.Errorf("up over a stale state:\n%s", out)
	}
	l.down(t)

	if err := st.save(l.state); err != nil {
		t.Fatal(err)
	}
	if out := l.down(t); !strings.Contains(out, "nothing to undo") || fileExists(l.state) {
		t.Errorf("down of a stale state:\n%s", out)
	}
}
