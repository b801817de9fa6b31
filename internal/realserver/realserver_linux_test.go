package realserver

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap"
	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap/decaptest"
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
		want Mode
		err  string
	}{
		{"direct", ModeDirect, ""}, {"gate", ModeDirect, ""}, {"dr", ModeDirect, ""}, {"droute", ModeDirect, ""},
		{"tunnel", ModeTunnel, ""}, {"ipip", ModeTunnel, ""}, {"tun", ModeTunnel, ""},
		{"masq", 0, "NAT is not offered"}, {"proxy", 0, "want direct"},
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
	ip(t, "-n", l.rs, "addr", "add", vip.String()+"/32", "dev", "lo")
	if got := l.answered(t, vip); !slices.Contains(got, vip) {
		t.Fatalf("with arp_ignore 0 the real server did not answer ARP for %s on lo: the check is blind", vip)
	}
	ip(t, "-n", l.rs, "addr", "del", vip.String()+"/32", "dev", "lo")
	ip(t, "-n", l.rs, "addr", "add", before.String()+"/32", "dev", "lo")
	snap := l.snapshot(t)

	out := l.up(t, Options{Mode: ModeDirect, VIPs: []netip.Addr{vip, before, vip6}})
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
	if a := ip(t, "-n", l.rs, "-o", "addr", "show", "dev", "lo"); !strings.Contains(a, "192.0.2.201/32") || !strings.Contains(a, "lo:fulcrum") {
		t.Errorf("lo: %s, want 192.0.2.201/32 labelled lo:fulcrum", a)
	}

	again := l.up(t, Options{Mode: ModeDirect, VIPs: []netip.Addr{vip, before, vip6}})
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
	if out := l.up(t, Options{Mode: ModeDirect, VIPs: []netip.Addr{vip}}); !strings.Contains(out, "net.ipv4.conf.all.arp_ignore: 0 -> 1") {
		t.Errorf("up after reset:\n%s", out)
	}
	st, err := LoadState(l.state)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.find(Change{Kind: KindSysctl, Path: confPath("all", arpIgnore)}); c == nil || c.Old != "0" {
		t.Errorf("record of all.arp_ignore %+v, want old 0 kept", c)
	}

	out = l.down(t)
	t.Logf("down:\n%s", out)
	if got := l.snapshot(t); got != snap {
		t.Errorf("down did not restore the namespace:\nbefore\n%s\nafter\n%s", snap, got)
	}
	if _, err := LoadState(l.state); err != nil || fileExists(l.state) {
		t.Errorf("state file left after down (err %v)", err)
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
	for _, mode := range []decap.Mode{decap.ModeGeneric, decap.ModeNative} {
		t.Run(mode.String(), func(t *testing.T) { testTunnel(t, mode) })
	}
}

func testTunnel(t *testing.T, xdpMode decap.Mode) {
	l := newLab(t)
	l.setSysctl(t, "all", rpFilter, "1") // strict, as many distributions set it
	snap := l.snapshot(t)

	out := l.up(t, Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4, vip6}, Decap: DecapEBPF, XDPMode: xdpMode})
	t.Logf("up:\n%s", out)
	for _, want := range []string{
		"sysctl net.ipv4.conf.vr.rp_filter: 0 -> 2",
		"xdp decapsulator (program id ",
		"attached to vr in " + xdpMode.String() + " mode",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up printed no %q", want)
		}
	}
	if link := ip(t, "-n", l.rs, "-d", "link", "show", "dev", "vr"); !strings.Contains(link, "xdp") {
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

	r := l.check(t)
	if !r.OK() {
		t.Errorf("status: %+v", r.Checks)
	}
	for _, k := range []string{"decap_4in4", "decap_6in4", "decap_4in6", "decap_6in6"} {
		if r.Decap[k] != 1 {
			t.Errorf("counter %s = %d, want 1 (%v)", k, r.Decap[k], r.Decap)
		}
	}

	// A second up leaves the program as it is.
	again := l.up(t, Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4, vip6}, Decap: DecapEBPF, XDPMode: xdpMode})
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
	l.up(t, Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4}, Decap: DecapEBPF, XDPMode: decap.ModeGeneric})
	ip(t, "-n", l.rs, "link", "set", "dev", "vr", "xdpgeneric", "off")
	r := l.check(t)
	if r.OK() {
		t.Fatalf("status after the program was detached: all OK")
	}
	out := l.up(t, Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4}, XDPMode: decap.ModeGeneric})
	if !strings.Contains(out, "xdp decapsulator (program id ") {
		t.Errorf("up did not attach again:\n%s", out)
	}
	if r := l.check(t); !r.OK() {
		t.Errorf("status: %+v", r.Checks)
	}
	l.down(t)
	if link := ip(t, "-n", l.rs, "-d", "link", "show", "dev", "vr"); strings.Contains(link, "xdp") {
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
		_, err = Up(Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4}, Decap: DecapKernel, StatePath: l.state}, &out)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "modprobe ipip") || !strings.Contains(err.Error(), "--decap ebpf") {
		t.Errorf("up --decap kernel: %v, want an error naming modprobe ipip and --decap ebpf", err)
	}
	l.up(t, Options{Mode: ModeTunnel, VIPs: []netip.Addr{vip4}})
	st, err := LoadState(l.state)
	if err != nil || st.Decap != "ebpf" {
		t.Errorf("auto chose %q (%v), want ebpf", st.Decap, err)
	}
	l.down(t)
}
