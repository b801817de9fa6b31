package flowsync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// progResolver is a node's control plane over a real program: one
// service (ring index 0) on kvip:80/TCP with persistence group gid, whose
// two backends have the slots slots[0] and slots[1], the ring alternating
// between them.
type progResolver struct {
	slots [2]uint32
	gid   uint32
	ring  []uint32
}

var (
	kvip      = netip.MustParseAddr("10.99.0.100")
	kbackends = [2]netip.Addr{netip.MustParseAddr("10.99.0.11"), netip.MustParseAddr("10.99.0.12")}
)

func newProgResolver(slots [2]uint32, gid uint32) *progResolver {
	r := &progResolver{slots: slots, gid: gid, ring: make([]uint32, xdp.RingSize)}
	for i := range r.ring {
		r.ring[i] = slots[i%2]
	}
	return r
}

func (r *progResolver) Service(f Flow) (uint32, uint32, bool) {
	if f.Dst != netip.AddrPortFrom(kvip, 80) || f.Proto != 6 {
		return 0, 0, false
	}
	return 0, r.gid, true
}

func (r *progResolver) Pick(id uint32, f Flow) (uint32, bool) {
	return r.ring[xdp.RingIndex(f, false, false)], true
}

func (r *progResolver) Slot(id uint32, b netip.Addr) (uint32, bool) {
	for i, a := range kbackends {
		if a == b {
			return r.slots[i], true
		}
	}
	return 0, false
}

func (r *progResolver) Backend(slot uint32) (netip.Addr, bool) {
	for i, s := range r.slots {
		if s == slot {
			return kbackends[i], true
		}
	}
	return netip.Addr{}, false
}

func (r *progResolver) group() Group {
	return Group{ID: r.gid, Key: NewGroupKey(kvip, "shop"), Bits4: 24, Bits6: 64, Timeout: 300 * time.Second}
}

func (r *progResolver) Group(id uint32) (Group, bool) { return r.group(), id == r.gid }

func (r *progResolver) GroupByKey(k GroupKey) (Group, bool) { return r.group(), k == r.group().Key }

// program loads a forwarder with the service of r; ifindex and mac are
// the interface it forwards out of.
func program(t *testing.T, r *progResolver, ifindex int, mac net.HardwareAddr) *xdp.Program {
	t.Helper()
	p, err := xdp.Load(xdp.Options{MaxServices: 2, MaxSlots: 16, FlowTableSize: 1024, PersistTableSize: 1024, EventBufferSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.SetService(xdp.ServiceKey{Addr: kvip, Port: 80, Proto: 6}, xdp.Service{ID: 0, Mode: xdp.ModeDirect,
		PersistGroup: r.gid, PersistTimeout: 300 * time.Second, PersistBits4: 24, PersistBits6: 64}))
	for i, slot := range r.slots {
		must(p.SetReal(slot, xdp.Real{Addr: kbackends[i], DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(0x11 + i)},
			SrcMAC: mac, IfIndex: ifindex}))
		must(p.SetMember(0, kbackends[i], slot))
	}
	must(p.SetRing(0, r.ring))
	return p
}

// TestKernelSync runs the Syncer on real XDP programs: lb1's program,
// attached to a director namespace's interface, schedules a client's
// connections and reports them (ReadNewFlows); lb2's program, loaded but
// attached nowhere, gets the persistence entry and the persisted flow in
// its kernel maps, under its own slot and group ids, and after a ring
// change the flow the new ring would move.
func TestKernelSync(t *testing.T) {
	netns.Require(t)
	if err := xdp.Supported(); err != nil {
		t.Skipf("the kernel cannot run the forwarder: %v", err)
	}
	prefix := fmt.Sprintf("fs%d%04x", os.Getpid()%100000, rand.IntN(1<<16))
	client, dir := prefix+"c", prefix+"d"
	for _, ns := range []string{client, dir} {
		netns.Add(t, ns)
	}
	netns.IP(t, "-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", dir)
	netns.IP(t, "-n", client, "addr", "add", "10.99.0.2/24", "dev", "eth0")
	netns.IP(t, "-n", dir, "addr", "add", "10.99.0.1/24", "dev", "eth0")
	netns.IP(t, "-n", client, "link", "set", "eth0", "up")
	netns.IP(t, "-n", dir, "link", "set", "eth0", "up")
	netns.IP(t, "-n", client, "route", "add", kvip.String()+"/32", "via", "10.99.0.1")

	resA, resB := newProgResolver([2]uint32{1, 2}, 1), newProgResolver([2]uint32{7, 9}, 4)
	var progA *xdp.Program
	if err := netns.Do(dir, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		progA = program(t, resA, ifc.Index, ifc.HardwareAddr)
		_, err = progA.Attach("eth0", xdp.AttachGeneric)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	progB := program(t, resB, 1 /* lo: attached nowhere, it forwards nothing */, net.HardwareAddr{2, 0, 0, 0, 0, 1})

	c1, c2 := listen(t, "127.0.0.1"), listen(t, "127.0.0.1")
	key := []byte("the directors' shared secret")
	a, err := New(Options{Node: "lb1", Conn: c1, Peers: []netip.AddrPort{addrOf(c2)}, AuthKey: key,
		Table: progA, Events: progA, Resolver: resA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Node: "lb2", Conn: c2, Peers: []netip.AddrPort{addrOf(c1)}, AuthKey: key,
		Table: progB, Resolver: resB})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})

	// A connection from the client: its SYN goes through lb1's program
	// to a backend that is not there, which is all the test needs.
	connect := func(port int) {
		t.Helper()
		err := netns.Do(client, func() error {
			d := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.IPv4(10, 99, 0, 2), Port: port}}
			c, err := d.Dial("tcp4", netip.AddrPortFrom(kvip, 80).String())
			if err == nil {
				c.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	kflow := func(port uint16) Flow {
		return Flow{Src: netip.AddrPortFrom(netip.MustParseAddr("10.99.0.2"), port), Dst: netip.AddrPortFrom(kvip, 80), Proto: 6}
	}
	persists := func(p *xdp.Program) map[persistKey]netip.Addr {
		m := map[persistKey]netip.Addr{}
		if err := p.Persists(func(g uint32, c, b netip.Addr, _ time.Duration) bool {
			m[persistKey{g, c}] = b
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	flows := func(p *xdp.Program) map[Flow]uint32 {
		m := map[Flow]uint32{}
		if err := p.Flows(func(f Flow, slot uint32, _ time.Duration) bool {
			m[f] = slot
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// poll waits for a kernel map to show what cond wants; the maps have
	// no change notification.
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; lb1 %+v, lb2 %+v", what, a.Status(), b.Status())
			}
		}
	}

	// 1. A new client: the ring picks; the persistence entry goes to lb2.
	connect(40001)
	first, ok := flows(progA)[kflow(40001)]
	if !ok {
		t.Fatalf("lb1's program has no flow for the connection: %v", flows(progA))
	}
	backend, _ := resA.Backend(first)
	clientNet := netip.MustParseAddr("10.99.0.0")
	poll("lb2's persistence entry", func() bool { return persists(progB)[persistKey{4, clientNet}] == backend })
	if f := flows(progB); len(f) != 0 {
		t.Errorf("lb2 got flows %v for a connection its ring schedules alike", f)
	}

	// 2. Its next connection is scheduled by persistence: the flow goes
	// to lb2 too, pinned to lb2's slot of the same backend.
	connect(40002)
	slotB, _ := resB.Slot(0, backend)
	poll("lb2's persisted flow", func() bool { return flows(progB)[kflow(40002)] == slotB })

	// 3. A ring change: lb1's flows that the new ring sends elsewhere go
	// to lb2.
	moved := kflow(40003)
	other := resA.slots[0]
	if other == resA.ring[xdp.RingIndex(moved, false, false)] {
		other = resA.slots[1]
	}
	if err := progA.InsertFlow(moved, other); err != nil {
		t.Fatal(err)
	}
	a.RingChanged(0)
	otherB, _ := resB.Slot(0, kbackends[map[uint32]int{resA.slots[0]: 0, resA.slots[1]: 1}[other]])
	poll("lb2's moved flow", func() bool { return flows(progB)[moved] == otherB })
	if st := b.Status(); len(st.Dropped) != 0 {
		t.Errorf("lb2 dropped %v", st.Dropped)
	}
}

// BenchmarkKernelScan measures a refresh scan of a full kernel flow table
// (262,144 flows, a sixteenth of them moved by a ring change) up to the
// queue: reading the map, the resolver's lookups and the encoding checks.
func BenchmarkKernelScan(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: XDP maps")
	}
	if err := xdp.Supported(); err != nil {
		b.Skipf("the kernel cannot run the forwarder: %v", err)
	}
	const n = 1 << 18
	res := newProgResolver([2]uint32{1, 2}, 1)
	p, err := xdp.Load(xdp.Options{MaxServices: 2, MaxSlots: 16, FlowTableSize: n, PersistTableSize: 1024, EventBufferSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	moved := 0
	for i := range n {
		f := Flow{Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000),
			Dst: netip.AddrPortFrom(kvip, 80), Proto: 6}
		slot := res.ring[xdp.RingIndex(f, false, false)]
		if i%16 == 0 {
			slot = 3 - slot // the other one
			moved++
		}
		if err := p.InsertFlow(f, slot); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(Options{Node: "lb1", Conn: listenB(b), Queue: 2 * n, Table: p, Resolver: res})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s.qmu.Lock()
		s.live, s.bulk = newFIFO(len(s.live.q)), newFIFO(len(s.bulk.q))
		s.qmu.Unlock()
		if err := s.scanFlows(b.Context(), nil, netip.AddrPort{}); err != nil {
			b.Fatal(err)
		}
		if s.bulk.n < moved*9/10 {
			b.Fatalf("queued %d of %d moved flows", s.bulk.n, moved)
		}
	}
	b.ReportMetric(float64(n), "flows/scan")
}

func listenB(b *testing.B) net.PacketConn {
	c, err := Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
