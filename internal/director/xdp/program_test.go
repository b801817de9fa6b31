//go:build linux

package xdp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
)

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoIPIP   = 4
	protoIPv6   = 41
	protoICMPv6 = 58
)

var verdictNames = map[uint32]string{0: "ABORTED", xdpDrop: "DROP", xdpPass: "PASS", xdpTX: "TX", xdpRedirect: "REDIRECT"}

var (
	dirMAC    = mac("02:00:00:00:00:01") // the director's interface (lo in PROG_TEST_RUN)
	routerMAC = mac("02:00:00:00:00:02") // the client side's next hop
	otherMAC  = mac("02:00:00:00:00:03")
	rs1MAC    = mac("02:00:00:00:0a:01")
	rs2MAC    = mac("02:00:00:00:0a:02")
	gwMAC     = mac("02:00:00:00:0b:01") // tunnel next hop
	egressMAC = mac("02:00:00:00:0c:01") // the redirect interface's own

	vip4    = netip.MustParseAddr("192.0.2.10")
	vip4t   = netip.MustParseAddr("192.0.2.20") // tunnel, all ports
	vip4x   = netip.MustParseAddr("192.0.2.30") // tunnel over IPv6
	vip6    = netip.MustParseAddr("2001:db8::10")
	vip6t   = netip.MustParseAddr("2001:db8::20")
	vip6x   = netip.MustParseAddr("2001:db8::30") // tunnel over IPv4
	cli4    = netip.MustParseAddr("198.51.100.7")
	cli6    = netip.MustParseAddr("2001:db8:c::7")
	rs1     = netip.MustParseAddr("10.0.0.1")
	rs2     = netip.MustParseAddr("10.0.0.2")
	rs6     = netip.MustParseAddr("2001:db8:a::1")
	tun4    = netip.MustParseAddr("10.1.0.1")
	tsrc4   = netip.MustParseAddr("10.0.0.254")
	tun6    = netip.MustParseAddr("2001:db8:1::1")
	tsrc6   = netip.MustParseAddr("2001:db8::fe")
	router  = netip.MustParseAddr("203.0.113.1")
	router6 = netip.MustParseAddr("2001:db8:ffff::1")
)

// lo is where BPF_PROG_TEST_RUN says XDP packets arrive.
const loIndex = 1

// Slots of the standard lab.
const (
	slotRS1   = 0 // direct, XDP_TX
	slotRS2   = 1 // direct, redirected to ifindex 99
	slotTun4  = 2 // tunnel over IPv4
	slotTun6  = 3 // tunnel over IPv6
	slotRS6   = 4 // direct IPv6
	slotSpare = 5
)

type lab struct {
	t testing.TB
	p *Program
}

func needBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for BPF")
	}
	if err := Supported(); err != nil {
		t.Skipf("kernel cannot run the program: %v", err)
	}
}

func newLab(t testing.TB, o Options) *lab {
	t.Helper()
	needBPF(t)
	if o.MaxServices == 0 {
		o.MaxServices = 16
	}
	if o.MaxSlots == 0 {
		o.MaxSlots = 64
	}
	if o.FlowTableSize == 0 {
		o.FlowTableSize = 1024
	}
	p, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := p.setIfMAC(loIndex, dirMAC); err != nil {
		t.Fatal(err)
	}
	return &lab{t: t, p: p}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fill(slot uint32) []uint32 {
	r := make([]uint32, RingSize)
	for i := range r {
		r[i] = slot
	}
	return r
}

func (l *lab) service(addr netip.Addr, port uint16, proto uint8, s Service, ring []uint32) {
	l.t.Helper()
	must(l.t, l.p.SetService(ServiceKey{Addr: addr, Port: port, Proto: proto}, s))
	if ring != nil {
		must(l.t, l.p.SetRing(s.ID, ring))
	}
}

func (l *lab) real(slot uint32, r Real) {
	l.t.Helper()
	must(l.t, l.p.SetReal(slot, r))
}

// standard sets up the services and slots most cases use.
func (l *lab) standard() {
	l.real(slotRS1, Real{Addr: rs1, DstMAC: rs1MAC, SrcMAC: dirMAC, IfIndex: loIndex})
	l.real(slotRS2, Real{Addr: rs2, DstMAC: rs2MAC, SrcMAC: egressMAC, IfIndex: 99})
	l.real(slotTun4, Real{Addr: tun4, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex, TunnelSrc: tsrc4})
	l.real(slotTun6, Real{Addr: tun6, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex, TunnelSrc: tsrc6})
	l.real(slotRS6, Real{Addr: rs6, DstMAC: rs1MAC, SrcMAC: dirMAC, IfIndex: loIndex})
	l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect}, fill(slotRS1))
	l.service(vip4, 53, protoUDP, Service{ID: 1, Mode: ModeDirect}, fill(slotRS2))
	l.service(vip6, 80, protoTCP, Service{ID: 2, Mode: ModeDirect}, fill(slotRS6))
	l.service(vip6, 53, protoUDP, Service{ID: 3, Mode: ModeDirect}, fill(slotRS6))
	l.service(vip4t, 0, protoTCP, Service{ID: 4, Mode: ModeTunnel}, fill(slotTun4))
	l.service(vip6t, 0, protoTCP, Service{ID: 5, Mode: ModeTunnel}, fill(slotTun6))
	l.service(vip6x, 80, protoTCP, Service{ID: 6, Mode: ModeTunnel}, fill(slotTun4))
	l.service(vip4x, 80, protoUDP, Service{ID: 7, Mode: ModeTunnel}, fill(slotTun6))
	l.service(vip4, 8080, protoTCP, Service{ID: 8, Mode: ModeDirect}, fill(NoSlot))
}

func (l *lab) run(pkt []byte) (uint32, []byte) {
	l.t.Helper()
	out := make([]byte, len(pkt)+256)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	ret, err := l.p.objs.FulcrumXdp.Run(opts)
	if err != nil {
		l.t.Fatalf("run: %v", err)
	}
	return ret, opts.DataOut
}

func (l *lab) global() map[string]uint64 {
	l.t.Helper()
	g, err := l.p.Global()
	must(l.t, err)
	return g
}

func (l *lab) counters(slot uint32) Counters {
	l.t.Helper()
	c, err := l.p.SlotCounters(slot)
	must(l.t, err)
	return c
}

// delta is what moved between two Global() readings.
func delta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func withMACs(pkt []byte, dst, src []byte) []byte {
	out := bytes.Clone(pkt)
	copy(out[0:], dst)
	copy(out[6:], src)
	return out
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// outer4 is the header the program must push to tunnel inner to dst.
func outer4(src, dst netip.Addr, proto uint8, inner []byte, tos uint8, id, frag uint16) []byte {
	return ipv4(src, dst, proto, inner, v4opts{tos: tos, id: id, fragOff: frag, ttl: 64})
}

func outer6(src, dst netip.Addr, next uint8, inner []byte, tclass uint8, label uint32) []byte {
	return ipv6(src, dst, next, inner, tclass, label)
}

func pkt4(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto uint8, o v4opts) []byte {
	var l4 []byte
	if proto == protoTCP {
		l4 = tcp(sport, dport, []byte("hello"))
	} else {
		l4 = udp(sport, dport, []byte("hello"))
	}
	return ether(dirMAC, routerMAC, 0x0800, ipv4(src, dst, proto, l4, o))
}

func pkt6(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto uint8) []byte {
	var l4 []byte
	if proto == protoTCP {
		l4 = tcp(sport, dport, []byte("hello"))
	} else {
		l4 = udp(sport, dport, []byte("hello"))
	}
	return ether(dirMAC, routerMAC, 0x86dd, ipv6(src, dst, proto, l4, 0, 0))
}

func label(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, proto uint8) uint32 {
	return flowHash(src, dst, sport, dport, proto) & 0xfffff
}

type forwardCase struct {
	name    string
	in      []byte
	verdict uint32
	out     []byte            // nil: the input unchanged
	moved   map[string]uint64 // Global() counters that must move, by exactly this much
}

func forwardCases() []forwardCase {
	tcp4 := pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{id: 7, fragOff: 0x4000})
	udp4 := pkt4(cli4, 40001, vip4, 53, protoUDP, v4opts{})
	tcp6 := pkt6(cli6, 40000, vip6, 80, protoTCP)
	udp6 := pkt6(cli6, 40001, vip6, 53, protoUDP)

	tun4in := ipv4(cli4, vip4t, protoTCP, tcp(40002, 443, []byte("hello")), v4opts{tos: 0x10, id: 0x1234, fragOff: 0x4000})
	tun4noDF := ipv4(cli4, vip4t, protoTCP, tcp(40003, 22, []byte("hello")), v4opts{id: 0x4321})
	tun6in := ipv6(cli6, vip6t, protoTCP, tcp(40002, 443, []byte("hello")), 0xb8, 0x12345)
	x6in4 := ipv6(cli6, vip6x, protoTCP, tcp(40004, 80, []byte("hello")), 0, 0)
	x4in6 := ipv4(cli4, vip4x, protoUDP, udp(40005, 80, []byte("hello")), v4opts{tos: 0x2e})

	fwd := func(n uint64, how string) map[string]uint64 {
		return map[string]uint64{how: n, "flows_new": n}
	}
	pass := func(reason string) map[string]uint64 { return map[string]uint64{reason: 1} }

	return []forwardCase{
		{"direct v4 TCP", tcp4, xdpTX, withMACs(tcp4, rs1MAC, dirMAC), fwd(1, "tx")},
		{"direct v4 UDP redirected", udp4, xdpRedirect, withMACs(udp4, rs2MAC, egressMAC), fwd(1, "redirect")},
		{"direct v6 TCP", tcp6, xdpTX, withMACs(tcp6, rs1MAC, dirMAC), fwd(1, "tx")},
		{"direct v6 UDP", udp6, xdpTX, withMACs(udp6, rs1MAC, dirMAC), fwd(1, "tx")},
		{"tunnel v4 in v4, port-0 service, DF kept", ether(dirMAC, routerMAC, 0x0800, tun4in), xdpTX,
			ether(gwMAC, dirMAC, 0x0800, outer4(tsrc4, tun4, protoIPIP, tun4in, 0x10, 0x1234, 0x4000)), fwd(1, "tx")},
		{"tunnel v4 in v4, no DF", ether(dirMAC, routerMAC, 0x0800, tun4noDF), xdpTX,
			ether(gwMAC, dirMAC, 0x0800, outer4(tsrc4, tun4, protoIPIP, tun4noDF, 0, 0x4321, 0)), fwd(1, "tx")},
		{"tunnel v6 in v6, port-0 service", ether(dirMAC, routerMAC, 0x86dd, tun6in), xdpTX,
			ether(gwMAC, dirMAC, 0x86dd, outer6(tsrc6, tun6, protoIPv6, tun6in, 0xb8, label(cli6, 40002, vip6t, 443, protoTCP))), fwd(1, "tx")},
		{"tunnel v6 in v4", ether(dirMAC, routerMAC, 0x86dd, x6in4), xdpTX,
			ether(gwMAC, dirMAC, 0x0800, outer4(tsrc4, tun4, protoIPv6, x6in4, 0, 0, 0x4000)), fwd(1, "tx")},
		{"tunnel v4 in v6", ether(dirMAC, routerMAC, 0x0800, x4in6), xdpTX,
			ether(gwMAC, dirMAC, 0x86dd, outer6(tsrc6, tun6, protoIPIP, x4in6, 0x2e, label(cli4, 40005, vip4x, 80, protoUDP))), fwd(1, "tx")},

		// Ethernet padding: a 60-byte frame carrying a shorter IP packet.
		{"direct v4 with Ethernet padding", append(pkt4(cli4, 40009, vip4, 80, protoTCP, v4opts{}), make([]byte, 6)...), xdpTX,
			withMACs(append(pkt4(cli4, 40009, vip4, 80, protoTCP, v4opts{}), make([]byte, 6)...), rs1MAC, dirMAC), fwd(1, "tx")},

		// Not ours.
		{"no service (port)", pkt4(cli4, 40000, vip4, 81, protoTCP, v4opts{}), xdpPass, nil, pass("passed_no_service")},
		{"no service (protocol)", pkt4(cli4, 40000, vip4, 80, protoUDP, v4opts{}), xdpPass, nil, pass("passed_no_service")},
		{"no service (address)", pkt4(cli4, 40000, rs1, 80, protoTCP, v4opts{}), xdpPass, nil, pass("passed_no_service")},
		{"empty ring", pkt4(cli4, 40000, vip4, 8080, protoTCP, v4opts{}), xdpPass, nil, pass("passed_no_backend")},
		{"wrong destination MAC", withMACs(tcp4, otherMAC, routerMAC), xdpPass, nil, pass("passed_not_local")},
		{"broadcast", withMACs(tcp4, mac("ff:ff:ff:ff:ff:ff"), routerMAC), xdpPass, nil, pass("passed_not_local")},
		{"ARP", ether(mac("ff:ff:ff:ff:ff:ff"), routerMAC, 0x0806, make([]byte, 28)), xdpPass, nil, pass("passed_unknown")},
		{"non-IP to us", ether(dirMAC, routerMAC, 0x88cc, make([]byte, 46)), xdpPass, nil, pass("passed_unknown")},
		{"VLAN", ether(dirMAC, routerMAC, 0x8100, append([]byte{0, 5, 0x08, 0}, tcp4[14:]...)), xdpPass, nil, pass("passed_vlan")},
		{"QinQ", ether(dirMAC, routerMAC, 0x88a8, append([]byte{0, 5, 0x81, 0}, tcp4[14:]...)), xdpPass, nil, pass("passed_vlan")},
		{"ICMP echo to the VIP", ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4, protoICMP, icmp(8, 0, 1, []byte("ping")), v4opts{})), xdpPass, nil, pass("passed_unknown")},
		{"GRE", ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4, 47, make([]byte, 8), v4opts{})), xdpPass, nil, pass("passed_unknown")},
		{"ICMPv6 neighbour solicitation", ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6, protoICMPv6, icmp(135, 0, 0, make([]byte, 16)), 0, 0)), xdpPass, nil, pass("passed_unknown")},

		// What the program leaves to the kernel on purpose.
		{"IPv4 fragment, MF", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{fragOff: 0x2000}), xdpPass, nil, pass("passed_fragment")},
		{"IPv4 fragment, offset", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{fragOff: 0x0010}), xdpPass, nil, pass("passed_fragment")},
		{"IPv4 options", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{options: []byte{0x94, 4, 0, 0}}), xdpPass, nil, pass("passed_ip_options")},
		{"IPv6 fragment header", ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6, 44, append([]byte{6, 0, 0, 1, 0, 0, 0, 1}, tcp(40000, 80, nil)...), 0, 0)), xdpPass, nil, pass("passed_fragment")},
		{"IPv6 hop-by-hop", ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6, 0, append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp(40000, 80, nil)...), 0, 0)), xdpPass, nil, pass("passed_ipv6_ext")},
		{"IPv6 routing header", ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6, 43, append(make([]byte, 8), tcp(40000, 80, nil)...), 0, 0)), xdpPass, nil, pass("passed_ipv6_ext")},

		// Malformed: what the kernel's IP input drops too.
		{"Ethernet only", ether(dirMAC, routerMAC, 0x0800, nil), xdpDrop, nil, pass("dropped_malformed")},
		{"truncated IPv4 header", ether(dirMAC, routerMAC, 0x0800, tcp4[14:30]), xdpDrop, nil, pass("dropped_malformed")},
		{"truncated IPv6 header", ether(dirMAC, routerMAC, 0x86dd, tcp6[14:50]), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 ihl 4", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{ihl: 4}), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 ihl 0", func() []byte { b := bytes.Clone(tcp4); b[14] = 0x40; return b }(), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 ihl beyond the packet", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{ihl: 15, totDelta: -100}), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 total length beyond the frame", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{totDelta: 1}), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 total length below the header", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{totDelta: -30}), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 total length cuts TCP", pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{totDelta: -10}), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv4 version 6 in an IPv4 frame", ether(dirMAC, routerMAC, 0x0800, tcp6[14:]), xdpDrop, nil, pass("dropped_malformed")},
		{"truncated TCP", ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4, protoTCP, tcp(40000, 80, nil)[:12], v4opts{})), xdpDrop, nil, pass("dropped_malformed")},
		{"truncated UDP", ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4, protoUDP, udp(40000, 53, nil)[:6], v4opts{})), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv6 payload length beyond the frame", func() []byte {
			b := bytes.Clone(tcp6)
			binary.BigEndian.PutUint16(b[18:], uint16(len(b)))
			return b
		}(), xdpDrop, nil, pass("dropped_malformed")},
		{"IPv6 payload cuts TCP", ether(dirMAC, routerMAC, 0x86dd, ipv6(cli6, vip6, protoTCP, tcp(40000, 80, nil)[:19], 0, 0)), xdpDrop, nil, pass("dropped_malformed")},
		{"truncated ICMP", ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP, []byte{3, 4, 0}, v4opts{})), xdpDrop, nil, pass("dropped_malformed")},
		{"ICMP error quoting Ethernet padding", ether(dirMAC, routerMAC, 0x0800, append(ipv4(router, vip4, protoICMP, icmp(3, 4, 1400, nil), v4opts{}),
			ipv4(vip4, cli4, protoTCP, tcp(80, 40000, nil), v4opts{})[:28]...)), xdpPass, nil, pass("passed_unknown")},
		{"ICMPv6 error, short payload length", ether(dirMAC, routerMAC, 0x86dd, ipv6(router6, vip6, protoICMPv6, []byte{2, 0, 0}, 0, 0)), xdpDrop, nil, pass("dropped_malformed")},
		{"ICMP error for no flow", ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP,
			icmp(3, 4, 1400, ipv4(vip4, cli4, protoTCP, tcp(80, 50000, nil), v4opts{})[:28]), v4opts{})), xdpPass, nil, pass("passed_icmp_no_flow")},
		{"ICMP error quoting another source", ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP,
			icmp(3, 4, 1400, ipv4(rs1, cli4, protoTCP, tcp(80, 40000, nil), v4opts{})[:28]), v4opts{})), xdpPass, nil, pass("passed_unknown")},
		{"ICMP error, truncated quote", ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP,
			icmp(3, 4, 1400, ipv4(vip4, cli4, protoTCP, tcp(80, 40000, nil), v4opts{})[:22]), v4opts{})), xdpPass, nil, pass("passed_unknown")},
	}
}

// TestForward runs each packet through the program and checks the
// verdict, every byte out and the counters that moved. The flow table is
// emptied between cases so that no case steers another.
func TestForward(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	for _, tc := range forwardCases() {
		t.Run(tc.name, func(t *testing.T) {
			l.t = t
			l.clearFlows()
			before := l.global()
			got, out := l.run(tc.in)
			if got != tc.verdict {
				t.Fatalf("verdict %s, want %s", verdictNames[got], verdictNames[tc.verdict])
			}
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if !bytes.Equal(out, want) {
				t.Errorf("bytes out differ:\ngot  %s\nwant %s", hex.EncodeToString(out), hex.EncodeToString(want))
			}
			if diff := cmp.Diff(tc.moved, delta(before, l.global())); diff != "" {
				t.Errorf("counters moved (-want +got):\n%s", diff)
			}
		})
	}
}

func (l *lab) clearFlows() {
	l.t.Helper()
	var k bpfFlowKey
	var keys []bpfFlowKey
	var v bpfFlow
	it := l.p.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	must(l.t, it.Err())
	for _, k := range keys {
		must(l.t, l.p.objs.Flows.Delete(k))
	}
}
