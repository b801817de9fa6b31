//go:build linux

package xdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// expect runs pkt and checks the verdict and the destination MAC it left with.
func (l *lab) expect(pkt []byte, verdict uint32, dst []byte) []byte {
	l.t.Helper()
	got, out := l.run(pkt)
	if got != verdict {
		l.t.Fatalf("verdict %s, want %s", verdictNames[got], verdictNames[verdict])
	}
	if dst != nil && !bytes.Equal(out[:6], dst) {
		l.t.Fatalf("destination MAC %x, want %x", out[:6], dst)
	}
	return out
}

// ageFlows makes every flow look idle for d.
func (l *lab) ageFlows(d time.Duration) {
	l.t.Helper()
	var k bpfFlowKey
	var v bpfFlow
	var keys []bpfFlowKey
	var vals []bpfFlow
	it := l.p.objs.Flows.Iterate()
	for it.Next(&k, &v) {
		v.SeenNs -= uint64(d)
		keys, vals = append(keys, k), append(vals, v)
	}
	must(l.t, it.Err())
	for i := range keys {
		must(l.t, l.p.objs.Flows.Put(keys[i], vals[i]))
	}
}

func (l *lab) agePersists(d time.Duration) {
	l.t.Helper()
	var k bpfPersistKey
	var v bpfPersist
	var keys []bpfPersistKey
	var vals []bpfPersist
	it := l.p.objs.Persists.Iterate()
	for it.Next(&k, &v) {
		v.SeenNs -= uint64(d)
		keys, vals = append(keys, k), append(vals, v)
	}
	must(l.t, it.Err())
	for i := range keys {
		must(l.t, l.p.objs.Persists.Put(keys[i], vals[i]))
	}
}

func TestFlowSticksWhenRingChanges(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	a := pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{})
	l.expect(a, xdpTX, rs1MAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	l.expect(a, xdpTX, rs1MAC) // established: keeps its backend
	l.expect(pkt4(cli4, 1001, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)

	if got := l.counters(slotRS1); got.Packets != 2 || got.NewFlows != 1 || got.Bytes != 2*uint64(len(a)) {
		t.Errorf("slot %d counters %+v, want 2 packets of %d bytes, 1 new flow", slotRS1, got, len(a))
	}
	if got := l.counters(slotRS2); got.Packets != 1 || got.NewFlows != 1 {
		t.Errorf("slot %d counters %+v, want 1 packet, 1 new flow", slotRS2, got)
	}
	must(t, l.p.ClearSlotCounters(slotRS1))
	if got := l.counters(slotRS1); got != (Counters{}) {
		t.Errorf("cleared counters %+v", got)
	}
}

func TestDeadSlotRescheduled(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	a := pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{})
	l.expect(a, xdpTX, rs1MAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	l.real(slotRS1, Real{Addr: rs1, DstMAC: rs1MAC, SrcMAC: dirMAC, IfIndex: loIndex, Dead: true})
	before := l.global()
	l.expect(a, xdpRedirect, rs2MAC)
	l.expect(a, xdpRedirect, rs2MAC)
	if d := delta(before, l.global()); d["flows_rescheduled"] != 1 || d["flows_new"] != 1 {
		t.Errorf("counters moved %v, want 1 rescheduled, 1 new", d)
	}

	// An emptied slot: its flows are rescheduled too.
	b := pkt4(cli4, 1002, vip4, 80, protoTCP, v4opts{})
	l.expect(b, xdpRedirect, rs2MAC)
	must(t, l.p.SetRing(0, fill(slotRS1)))
	l.real(slotRS1, Real{Addr: rs1, DstMAC: rs1MAC, SrcMAC: dirMAC, IfIndex: loIndex})
	must(t, l.p.DeleteReal(slotRS2))
	l.expect(b, xdpTX, rs1MAC)
}

func TestFlowTimeout(t *testing.T) {
	l := newLab(t, Options{FlowTimeout: 10 * time.Second})
	l.standard()
	a := pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{})
	b := pkt4(cli4, 1001, vip4, 80, protoTCP, v4opts{})
	l.expect(a, xdpTX, rs1MAC)
	l.expect(b, xdpTX, rs1MAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	l.ageFlows(9 * time.Second)
	l.expect(a, xdpTX, rs1MAC) // idle 9s of 10: still the flow's
	l.ageFlows(11 * time.Second)
	before := l.global()
	l.expect(b, xdpRedirect, rs2MAC) // idle 20s: new again
	if d := delta(before, l.global()); d["flows_new"] != 1 {
		t.Errorf("counters moved %v, want 1 new flow", d)
	}
}

func TestPersistenceNetmask(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect, PersistGroup: 1,
		PersistTimeout: 300 * time.Second, PersistBits4: 24, PersistBits6: 64}, fill(slotRS1))
	l.service(vip6, 80, protoTCP, Service{ID: 2, Mode: ModeDirect, PersistGroup: 1,
		PersistTimeout: 300 * time.Second, PersistBits4: 24, PersistBits6: 64}, fill(slotRS6))
	must(t, l.p.SetMember(0, rs1, slotRS1))
	must(t, l.p.SetMember(0, rs2, slotRS2))
	must(t, l.p.SetMember(2, rs6, slotRS6))
	must(t, l.p.SetMember(2, rs1, slotRS1))

	l.expect(pkt4(netip.MustParseAddr("198.51.100.7"), 1000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	l.expect(pkt6(netip.MustParseAddr("2001:db8:c::7"), 1000, vip6, 80, protoTCP), xdpTX, rs1MAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	must(t, l.p.SetRing(2, fill(slotRS1)))
	before := l.global()
	// Same /24, another address and port: the same backend.
	l.expect(pkt4(netip.MustParseAddr("198.51.100.200"), 2000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	// Same /64.
	l.expect(pkt6(netip.MustParseAddr("2001:db8:c::ffff:1"), 2000, vip6, 80, protoTCP), xdpTX, rs1MAC)
	if d := delta(before, l.global()); d["flows_persisted"] != 2 {
		t.Errorf("counters moved %v, want 2 persisted flows", d)
	}
	// Another /24: the ring.
	l.expect(pkt4(netip.MustParseAddr("198.51.101.7"), 1000, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)

	var got []string
	must(t, l.p.Persists(func(group uint32, client, backend netip.Addr, age time.Duration) bool {
		if group != 1 || age > time.Minute {
			t.Errorf("entry group %d age %s", group, age)
		}
		got = append(got, client.String()+">"+backend.String())
		return true
	}))
	want := map[string]bool{"198.51.100.0>10.0.0.1": true, "2001:db8:c::>2001:db8:a::1": true, "198.51.101.0>10.0.0.2": true}
	if len(got) != len(want) {
		t.Errorf("persistence entries %v, want %v", got, want)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("persistence entry %s not among %v", g, want)
		}
	}
}

func TestPersistenceGroupSharedByServices(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	shop := Service{Mode: ModeDirect, PersistGroup: 7, PersistTimeout: time.Minute, PersistBits4: 32}
	shop.ID = 0
	l.service(vip4, 80, protoTCP, shop, fill(slotRS1))
	shop.ID = 9
	l.service(vip4, 443, protoTCP, shop, fill(slotRS2))
	// The 443 service reaches rs1 through a slot of its own.
	l.real(slotSpare, Real{Addr: rs1, DstMAC: mac("02:00:00:00:0a:09"), SrcMAC: dirMAC, IfIndex: loIndex})
	must(t, l.p.SetMember(0, rs1, slotRS1))
	must(t, l.p.SetMember(9, rs1, slotSpare))
	must(t, l.p.SetMember(9, rs2, slotRS2))

	l.expect(pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	l.expect(pkt4(cli4, 1001, vip4, 443, protoTCP, v4opts{}), xdpTX, mac("02:00:00:00:0a:09"))
	if c := l.counters(slotSpare); c.NewFlows != 1 {
		t.Errorf("slot %d counters %+v, want a new flow", slotSpare, c)
	}
	// Another client starts on 443 (ring: rs2); its 80 follows.
	other := netip.MustParseAddr("198.51.100.8")
	l.expect(pkt4(other, 1000, vip4, 443, protoTCP, v4opts{}), xdpRedirect, rs2MAC)
	must(t, l.p.SetMember(0, rs2, slotRS2))
	l.expect(pkt4(other, 1001, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)

	// A service without a member for the persisted backend uses its ring.
	must(t, l.p.DeleteMember(0, rs2))
	l.expect(pkt4(other, 1002, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
}

func TestPersistenceTimeout(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect, PersistGroup: 1,
		PersistTimeout: 30 * time.Second, PersistBits4: 32}, fill(slotRS1))
	must(t, l.p.SetMember(0, rs1, slotRS1))
	must(t, l.p.SetMember(0, rs2, slotRS2))
	l.expect(pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	l.agePersists(29 * time.Second)
	l.expect(pkt4(cli4, 1001, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC) // refreshed it
	l.agePersists(31 * time.Second)
	l.expect(pkt4(cli4, 1002, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)

	// A dead backend is no persistence target.
	l.expect(pkt4(cli4, 1003, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)
	must(t, l.p.SetRing(0, fill(slotRS1)))
	l.real(slotRS2, Real{Addr: rs2, DstMAC: rs2MAC, SrcMAC: egressMAC, IfIndex: 99, Dead: true})
	l.expect(pkt4(cli4, 1004, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
}

func TestICMPErrorsFollowTheFlow(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	// Flows: v4 direct, v6 direct, v4 tunnelled.
	l.expect(pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	l.expect(pkt6(cli6, 40000, vip6, 80, protoTCP), xdpTX, rs1MAC)
	l.expect(pkt4(cli4, 40000, vip4t, 443, protoTCP, v4opts{}), xdpTX, gwMAC)
	must(t, l.p.SetRing(0, fill(slotRS2)))
	must(t, l.p.SetRing(2, fill(slotRS2)))
	must(t, l.p.SetRing(4, fill(slotRS2)))

	// A router on the way back tells the VIP the reply was too big.
	quoted := ipv4(vip4, cli4, protoTCP, tcp(80, 40000, make([]byte, 1400)), v4opts{fragOff: 0x4000})[:28]
	fragNeeded := ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP, icmp(3, 4, 1280, quoted), v4opts{}))
	before := l.global()
	out := l.expect(fragNeeded, xdpTX, rs1MAC)
	if !bytes.Equal(out, withMACs(fragNeeded, rs1MAC, dirMAC)) {
		t.Errorf("frag-needed changed beyond the MACs")
	}
	if d := delta(before, l.global()); !cmp.Equal(d, map[string]uint64{"tx": 1, "icmp": 1}) {
		t.Errorf("counters moved %v, want tx 1, icmp 1", d)
	}

	quoted6 := ipv6(vip6, cli6, protoTCP, tcp(80, 40000, nil), 0, 0)
	tooBig := ether(dirMAC, routerMAC, 0x86dd, ipv6(netip.MustParseAddr("2001:db8:ffff::1"), vip6, protoICMPv6, icmp(2, 0, 1280, quoted6), 0, 0))
	l.expect(tooBig, xdpTX, rs1MAC)

	timeExceeded := ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4t, protoICMP,
		icmp(11, 0, 0, ipv4(vip4t, cli4, protoTCP, tcp(443, 40000, nil), v4opts{})[:28]), v4opts{}))
	out = l.expect(timeExceeded, xdpTX, gwMAC)
	if want := ether(gwMAC, dirMAC, 0x0800, outer4(tsrc4, tun4, protoIPIP, timeExceeded[14:], 0, 0, 0)); !bytes.Equal(out, want) {
		t.Errorf("tunnelled ICMP:\ngot  %x\nwant %x", out, want)
	}

	// About another client port: no flow, the kernel's.
	other := ether(dirMAC, routerMAC, 0x0800, ipv4(router, vip4, protoICMP, icmp(3, 4, 1280,
		ipv4(vip4, cli4, protoTCP, tcp(80, 40001, nil), v4opts{})[:28]), v4opts{}))
	before = l.global()
	l.expect(other, xdpPass, nil)
	if d := delta(before, l.global()); !cmp.Equal(d, map[string]uint64{"passed_icmp_no_flow": 1}) {
		t.Errorf("counters moved %v, want passed_icmp_no_flow 1", d)
	}
}

func TestTunnelTooBig(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	l.real(slotTun4, Real{Addr: tun4, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex, TunnelSrc: tsrc4, MTU: 1500})
	fits := ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4t, protoTCP, tcp(1000, 80, make([]byte, 1500-20-20-20)), v4opts{}))
	big := ether(dirMAC, routerMAC, 0x0800, ipv4(cli4, vip4t, protoTCP, tcp(1001, 80, make([]byte, 1500-20-20-20+1)), v4opts{}))
	l.expect(fits, xdpTX, gwMAC)
	before := l.global()
	l.expect(big, xdpPass, nil)
	if d := delta(before, l.global()); d["passed_too_big"] != 1 {
		t.Errorf("counters moved %v, want passed_too_big 1", d)
	}
}

func TestTunnelWithoutSource(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	l.real(slotTun4, Real{Addr: tun4, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex})
	before := l.global()
	l.expect(pkt4(cli4, 1000, vip4t, 80, protoTCP, v4opts{}), xdpPass, nil)
	if d := delta(before, l.global()); d["passed_encap_failed"] != 1 {
		t.Errorf("counters moved %v, want passed_encap_failed 1", d)
	}
}

func TestHashPicksTheRingEntryGoPredicts(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	ring := make([]uint32, RingSize)
	for i := range ring {
		ring[i] = uint32(i % 2) // slotRS1 or slotRS2
	}
	must(t, l.p.SetRing(0, ring))
	must(t, l.p.SetRing(2, ring))
	seen := map[uint32]int{}
	for port := uint16(1); port <= 64; port++ {
		for _, v6 := range []bool{false, true} {
			f := Flow{Src: netip.AddrPortFrom(cli4, port), Dst: netip.AddrPortFrom(vip4, 80), Proto: protoTCP}
			in := pkt4(cli4, port, vip4, 80, protoTCP, v4opts{})
			if v6 {
				f = Flow{Src: netip.AddrPortFrom(cli6, port), Dst: netip.AddrPortFrom(vip6, 80), Proto: protoTCP}
				in = pkt6(cli6, port, vip6, 80, protoTCP)
				l.real(slotRS2, Real{Addr: rs2, DstMAC: rs2MAC, SrcMAC: egressMAC, IfIndex: 99})
			}
			want := ring[RingIndex(f, false, false)]
			got, out := l.run(in)
			gotSlot := uint32(slotRS1)
			if got == xdpRedirect {
				gotSlot = slotRS2
			}
			if gotSlot != want || (got == xdpTX) != bytes.Equal(out[:6], rs1MAC) {
				t.Fatalf("flow %s went to slot %d, Go predicts %d", f, gotSlot, want)
			}
			seen[gotSlot]++
		}
	}
	if seen[slotRS1] < 32 || seen[slotRS2] < 32 {
		t.Errorf("128 flows over 2 slots: %v", seen)
	}

	// Source hashing: one client's ports all go one way, as Go predicts.
	l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect, HashSource: true}, nil)
	var slots []uint32
	for port := uint16(100); port < 116; port++ {
		got, _ := l.run(pkt4(cli4, port, vip4, 80, protoTCP, v4opts{}))
		slots = append(slots, got)
	}
	f := Flow{Src: netip.AddrPortFrom(cli4, 100), Dst: netip.AddrPortFrom(vip4, 80), Proto: protoTCP}
	wantVerdict := uint32(xdpTX)
	if ring[RingIndex(f, true, false)] == slotRS2 {
		wantVerdict = xdpRedirect
	}
	for i, s := range slots {
		if s != wantVerdict {
			t.Fatalf("source hashing: port %d verdict %s, want %s for all", 100+i, verdictNames[s], verdictNames[wantVerdict])
		}
	}
}

func TestInsertedFlowsAndPersistence(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	f := Flow{Src: netip.MustParseAddrPort("198.51.100.9:5555"), Dst: netip.AddrPortFrom(vip4, 80), Proto: protoTCP}
	must(t, l.p.InsertFlow(f, slotRS2))
	l.expect(pkt4(f.Src.Addr(), f.Src.Port(), vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)
	f6 := Flow{Src: netip.MustParseAddrPort("[2001:db8:c::9]:5555"), Dst: netip.AddrPortFrom(vip6, 53), Proto: protoUDP}
	must(t, l.p.InsertFlow(f6, slotRS1))
	l.expect(pkt6(cli6, 1, vip6, 53, protoUDP), xdpTX, rs1MAC) // a real one, via the ring

	got := map[Flow]uint32{}
	must(t, l.p.Flows(func(fl Flow, slot uint32, idle time.Duration) bool {
		if idle > time.Minute {
			t.Errorf("flow %s idle %s", fl, idle)
		}
		got[fl] = slot
		return true
	}))
	want := map[Flow]uint32{f: slotRS2, f6: slotRS1,
		{Src: netip.AddrPortFrom(cli6, 1), Dst: netip.AddrPortFrom(vip6, 53), Proto: protoUDP}: slotRS6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}

	l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect, PersistGroup: 3,
		PersistTimeout: time.Minute, PersistBits4: 24}, nil)
	must(t, l.p.SetMember(0, rs2, slotRS2))
	must(t, l.p.InsertPersist(3, netip.MustParseAddr("198.51.100.0"), rs2))
	l.expect(pkt4(netip.MustParseAddr("198.51.100.77"), 1, vip4, 80, protoTCP, v4opts{}), xdpRedirect, rs2MAC)

	if err := l.p.InsertFlow(f, 1<<20); err == nil {
		t.Error("InsertFlow accepted a slot out of range")
	}
}

func TestNewFlowEvents(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan NewFlow, 16)
	done := make(chan error, 1)
	go func() { done <- l.p.ReadNewFlows(ctx, func(e NewFlow) { events <- e }) }()

	l.expect(pkt6(cli6, 4242, vip6, 53, protoUDP), xdpTX, rs1MAC)
	l.expect(pkt6(cli6, 4242, vip6, 53, protoUDP), xdpTX, rs1MAC) // not new
	l.expect(pkt4(cli4, 4243, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	want := []NewFlow{
		{Flow: Flow{Src: netip.AddrPortFrom(cli6, 4242), Dst: netip.AddrPortFrom(vip6, 53), Proto: protoUDP}, Slot: slotRS6, Service: 3},
		{Flow: Flow{Src: netip.AddrPortFrom(cli4, 4243), Dst: netip.AddrPortFrom(vip4, 80), Proto: protoTCP}, Slot: slotRS1, Service: 0},
	}
	for i, w := range want {
		select {
		case got := <-events:
			if got != w {
				t.Errorf("event %d: got %+v, want %+v", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d: none", i)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("ReadNewFlows returned %v, want context.Canceled", err)
	}
	select {
	case e := <-events:
		t.Errorf("unexpected event %+v", e)
	default:
	}
}

// With nobody reading, a full ring buffer loses events, not packets.
func TestEventsLostNotPackets(t *testing.T) {
	l := newLab(t, Options{EventBufferSize: 4096})
	l.standard()
	before := l.global()
	const n = 200
	for port := uint16(1); port <= n; port++ {
		l.expect(pkt4(cli4, port, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	}
	d := delta(before, l.global())
	if d["tx"] != n || d["flows_new"] != n || d["events_lost"] == 0 || d["events_lost"] >= n {
		t.Errorf("counters moved %v, want tx and flows_new %d and some events lost", d, n)
	}
}

// decodeEvent must agree with encoding/binary on the generated layout.
func TestDecodeEvent(t *testing.T) {
	want := bpfEvent{Flow: bpfFlowKey{Src: [4]uint32{1, 2, 3, 4}, Dst: [4]uint32{5, 6, 7, 8},
		Sport: 9, Dport: 10, Proto: 17, Family: 6}, Slot: 11, Svc: 12, Persisted: 1}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, want); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 56 {
		t.Fatalf("struct event is %d bytes, decodeEvent assumes 56", buf.Len())
	}
	got, err := decodeEvent(buf.Bytes())
	if err != nil || got != want {
		t.Errorf("decodeEvent = %+v, %v; want %+v", got, err, want)
	}
	if _, err := decodeEvent(buf.Bytes()[:40]); err == nil {
		t.Error("decodeEvent accepted a short record")
	}
}

func TestSupported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without it Supported reports missing privileges")
	}
	// This kernel (the CI's) has everything the program needs.
	if err := Supported(); err != nil {
		t.Fatalf("Supported() = %v", err)
	}
}

// Flows reads big tables whole, in batches, and stops when told to.
func TestFlowsBatches(t *testing.T) {
	l := newLab(t, Options{FlowTableSize: 20000})
	const n = 10000
	keys := make([]bpfFlowKey, n)
	vals := make([]bpfFlow, n)
	now := monotonic()
	for i := range keys {
		f := Flow{Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), uint16(i)),
			Dst: netip.AddrPortFrom(vip4, 80), Proto: protoTCP}
		k, err := flowKey(f)
		must(t, err)
		keys[i], vals[i] = k, bpfFlow{Slot: uint32(i % 7), SeenNs: now}
	}
	_, err := l.p.objs.Flows.BatchUpdate(keys, vals, nil)
	must(t, err)
	seen := map[Flow]uint32{}
	must(t, l.p.Flows(func(f Flow, slot uint32, _ time.Duration) bool {
		if _, dup := seen[f]; dup {
			t.Fatalf("flow %s twice", f)
		}
		seen[f] = slot
		return true
	}))
	if len(seen) != n {
		t.Fatalf("Flows saw %d flows, want %d", len(seen), n)
	}
	for i, k := range keys {
		if got := seen[keyFlow(k)]; got != uint32(i%7) {
			t.Fatalf("flow %s: slot %d, want %d", keyFlow(k), got, i%7)
		}
	}
	calls := 0
	must(t, l.p.Flows(func(Flow, uint32, time.Duration) bool { calls++; return calls < 5000 }))
	if calls != 5000 {
		t.Errorf("Flows went on after false: %d calls", calls)
	}
}

// The program's clock (jiffies, scaled and offset at load) must agree with
// monotonic, or idle times and timeouts shift: a flow just forwarded is idle
// for at most a couple of ticks, and one InsertFlow stamped is as fresh.
func TestClockAgreesWithMonotonic(t *testing.T) {
	l := newLab(t, Options{})
	l.standard()
	tick, _, err := calibrateClock()
	must(t, err)
	l.expect(pkt4(cli4, 1000, vip4, 80, protoTCP, v4opts{}), xdpTX, rs1MAC)
	var k bpfFlowKey
	var v bpfFlow
	it := l.p.objs.Flows.Iterate()
	if !it.Next(&k, &v) {
		t.Fatalf("no flow after a packet: %v", it.Err())
	}
	now := monotonic()
	if d := int64(now - v.SeenNs); d > int64(2*tick) || d < -int64(2*tick) {
		t.Errorf("the program stamped %d, monotonic says %d: %v apart, tick %v", v.SeenNs, now, time.Duration(d), time.Duration(tick))
	}
}
