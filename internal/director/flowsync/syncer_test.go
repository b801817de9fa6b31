package flowsync

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var secret = []byte("the group's auth key")

func flow(client string, port uint16, proto uint8) Flow {
	return Flow{Src: netip.MustParseAddrPort(client), Dst: netip.AddrPortFrom(vip, port), Proto: proto}
}

// pair starts lb1 (slots from 10, group 7) and lb2 (slots from 20, group
// 3), peers of each other.
func pair(t *testing.T, mod1, mod2 func(*Options)) (*node, *node) {
	t.Helper()
	c1, c2 := listen(t, "127.0.0.1"), listen(t, "127.0.0.1")
	a := start(t, "lb1", c1, 10, 7, mod1, addrOf(c2))
	b := start(t, "lb2", c2, 20, 3, mod2, addrOf(c1))
	return a, b
}

func withKey(k []byte) func(*Options) { return func(o *Options) { o.AuthKey = k } }

// TestNewFlows: the policy sends persisted flows and persistence entries,
// not ring flows; the peer installs them under its own slot and group ids.
func TestNewFlows(t *testing.T) {
	t.Parallel()
	a, b := pair(t, withKey(secret), withKey(secret))
	persisted := flow("10.1.2.3:40000", 80, 6)
	ringOnly := flow("10.9.9.9:40001", 443, 6)
	ringPersist := flow("10.1.7.8:40002", 80, 6)
	a.events <- NewFlow{Flow: ringOnly, Slot: 11, Service: 2}
	a.events <- NewFlow{Flow: persisted, Slot: 12, Service: 1, Persisted: true}
	a.events <- NewFlow{Flow: ringPersist, Slot: 10, Service: 1}
	wantFlows := map[Flow]uint32{persisted: 22}
	wantPersists := map[persistKey]netip.Addr{
		{3, netip.MustParseAddr("10.1.2.0")}: backends[2],
		{3, netip.MustParseAddr("10.1.7.0")}: backends[0],
	}
	waitTable(t, b.table, "lb2's tables", func() bool {
		return len(b.table.flowSlots()) >= 1 && len(b.table.persistBackends()) >= 2
	})
	if diff := cmp.Diff(wantFlows, b.table.flowSlots()); diff != "" {
		t.Errorf("lb2's flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPersists, b.table.persistBackends(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("lb2's persistence entries (-want +got):\n%s", diff)
	}
	st := waitStatus(t, b.s, "lb2 counting 3 installs", func(s Status) bool { return s.Installed == 3 })
	if len(st.Dropped) != 0 || st.Peers[0].Node != "lb1" || st.Peers[0].LastHeard.IsZero() {
		t.Errorf("lb2 status: %+v", st)
	}
	waitStatus(t, a.s, "lb1 counting 3 entries sent", func(s Status) bool { return s.Sent >= 3 })
}

// TestAuthMismatch: a peer with another key, or none, is not listened to.
func TestAuthMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		key1     []byte
		key2     []byte
		dropped2 string
	}{
		{"other key", []byte("another secret"), secret, "auth"},
		{"no key", nil, secret, "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := pair(t, withKey(tc.key1), withKey(tc.key2))
			a.events <- NewFlow{Flow: flow("10.1.2.3:40000", 80, 6), Slot: 12, Service: 1, Persisted: true}
			st := waitStatus(t, b.s, "lb2 dropping lb1's datagrams", func(s Status) bool { return s.Dropped[tc.dropped2] >= 2 })
			if st.Installed != 0 || st.Received != 0 || !st.Peers[0].LastHeard.IsZero() {
				t.Errorf("lb2 took something from lb1: %+v", st)
			}
			if n := len(b.table.flowSlots()); n != 0 {
				t.Errorf("lb2 has %d flows, want 0", n)
			}
		})
	}
}

// TestRejects sends lb2 crafted datagrams from a socket posing as lb1 and
// checks each is dropped for its reason, and only the first copy of a
// valid one is taken.
func TestRejects(t *testing.T) {
	t.Parallel()
	c2 := listen(t, "127.0.0.1")
	fake := listen(t, "127.0.0.1")
	stranger := listen(t, "127.0.0.2")
	b := start(t, "lb2", c2, 20, 3, withKey(secret), addrOf(fake))
	key := Key(secret)
	seq := uint64(1000)
	mk := func(at time.Time, k []byte) []byte {
		seq++
		d := Datagram{Node: "lb1", Seq: seq, Time: at, Entries: []Entry{{Kind: KindFlow, Proto: 6,
			Client: netip.MustParseAddrPort("10.1.2.3:40000"), VIP: netip.AddrPortFrom(vip, 80), Backend: backends[1]}}}
		out, err := d.Append(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	good := mk(time.Now(), key)
	forged := bytes.Clone(good)
	forged[40] ^= 1
	steps := []struct {
		name   string
		from   net.PacketConn
		b      []byte
		reason string // "" : installed
	}{
		{"good", fake, good, ""},
		{"replayed", fake, good, "replay"},
		{"forged", fake, forged, "auth"},
		{"truncated", fake, good[:len(good)-5], "auth"},
		{"unsealed", fake, mk(time.Now(), nil), "auth"},
		{"garbage", fake, []byte("FULCRUM-FSYNC 1\x00 not a datagram at all"), "auth"},
		{"old clock", fake, mk(time.Now().Add(-2*MaxSkew), key), "replay"},
		{"future clock", fake, mk(time.Now().Add(2*MaxSkew), key), "replay"},
		{"stranger", stranger, mk(time.Now(), key), "not_peer"},
		{"newer", fake, mk(time.Now(), key), ""},
	}
	want := Status{Dropped: map[string]uint64{}}
	for _, s := range steps {
		if _, err := s.from.WriteTo(s.b, net.UDPAddrFromAddrPort(addrOf(c2))); err != nil {
			t.Fatal(err)
		}
		if s.reason == "" {
			want.Installed++
		} else {
			want.Dropped[s.reason]++
		}
		got := waitStatus(t, b.s, s.name, func(st Status) bool {
			return st.Installed == want.Installed && fmt.Sprint(st.Dropped) == fmt.Sprint(want.Dropped)
		})
		_ = got
	}
}

// TestRejectsMalformed: without a key, structure is all there is to check.
func TestRejectsMalformed(t *testing.T) {
	t.Parallel()
	c2 := listen(t, "127.0.0.1")
	fake := listen(t, "127.0.0.1")
	b := start(t, "lb2", c2, 20, 3, nil, addrOf(fake))
	d := sample()
	d.Node = "lb1"
	good, _ := d.Append(nil, nil)
	for i, bad := range [][]byte{good[:len(good)-1], append(bytes.Clone(good), 0), []byte("hello")} {
		fake.WriteTo(bad, net.UDPAddrFromAddrPort(addrOf(c2)))
		waitStatus(t, b.s, fmt.Sprint("malformed ", i), func(st Status) bool { return st.Dropped["malformed"] == uint64(i+1) })
	}
	fake.WriteTo(good, net.UDPAddrFromAddrPort(addrOf(c2)))
	fake.WriteTo(good, net.UDPAddrFromAddrPort(addrOf(c2)))
	// The sample's IPv6 flow has no service on lb2; its join gets a dump.
	st := waitStatus(t, b.s, "the sample taken once", func(st Status) bool {
		return st.Dropped["replay"] == 1 && st.Received == uint64(len(d.Entries))
	})
	if st.Dropped["unknown_service"] != 2 || st.Installed != 2 {
		t.Errorf("got %+v, want 2 installed (flow, persist) and 2 unknown_service (IPv6 flow and persist)", st)
	}
}

// TestRateLimit: MaxRate bounds what leaves, the queue bounds what
// waits, and the oldest entries are the ones dropped.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	const rate, queue, offered = 400, 200, 1000
	a, b := pair(t, func(o *Options) { o.MaxRate, o.Queue = rate, queue }, nil)
	// Offer faster than anything drains: all at once.
	start := time.Now()
	for i := range offered {
		a.s.Offer(Entry{Kind: KindFlow, Proto: 17, Client: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)),
			VIP: netip.AddrPortFrom(vip, 53), Backend: backends[0]})
	}
	offering := time.Since(start)
	// Only offered entries are dropped ("rate"): the joins' dumps (whose
	// done entries share the queue) are not, so this is exact.
	st := waitStatus(t, b.s, "lb2 installing what was not dropped", func(s Status) bool {
		return s.Installed+a.s.Status().Dropped["rate"] >= offered
	})
	elapsed := time.Since(start)
	dropped := a.s.Status().Dropped["rate"]
	// While the loop offered, the sender took at most its burst and the
	// rate for as long as the loop took (long, on a loaded machine); the
	// queue kept at most queue; the rest was dropped.
	burst := rate * 2 * DefaultFlush.Seconds()
	if sendable := burst + rate*offering.Seconds(); float64(dropped) < offered-queue-sendable {
		t.Errorf("dropped %d of %d with a queue of %d, and at most %.0f sent while offering for %v", dropped, offered, queue, sendable, offering)
	}
	if st.Installed+dropped != offered {
		t.Errorf("lb2 installed %d and lb1 dropped %d: want %d in all", st.Installed, dropped, offered)
	}
	// What got through took at least (n - burst) / rate.
	if min := time.Duration((float64(st.Installed) - burst) / rate * float64(time.Second)); elapsed < min*9/10 {
		t.Errorf("%d entries arrived in %v, faster than %d/s allows (%v)", st.Installed, elapsed, rate, min)
	}
	// The newest survived: the last offered client port is there.
	last := Flow{Src: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 1000+offered-1), Dst: netip.AddrPortFrom(vip, 53), Proto: 17}
	if _, ok := b.table.flowSlots()[last]; !ok {
		t.Errorf("the newest entry was dropped")
	}
}

// TestOfferKeepsBulk: a full queue drops the oldest entry Offer queued,
// never what a scan or a dump queued (here a dump's done entry, without
// which the joining peer would ask for the whole table again).
func TestOfferKeepsBulk(t *testing.T) {
	t.Parallel()
	const queue = 64
	s, err := New(Options{Node: "lb1", Conn: listen(t, "127.0.0.1"), Queue: queue, Table: newFakeTable(), Resolver: &fakeResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	if err := s.offerWait(t.Context(), item{e: Entry{Kind: KindDone}, to: peer}); err != nil {
		t.Fatal(err)
	}
	const offered = 3 * queue
	for i := range offered {
		s.Offer(Entry{Kind: KindFlow, Proto: 17, Client: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)),
			VIP: netip.AddrPortFrom(vip, 53), Backend: backends[0]})
	}
	if got, want := s.Status().Dropped["rate"], uint64(offered-(queue-1)); got != want {
		t.Errorf("dropped %d, want %d", got, want)
	}
	got := s.take(2*queue, nil)
	if len(got) != queue || got[0].e.Kind != KindDone || got[0].to != peer {
		t.Fatalf("took %d entries, the first %+v; want %d, the dump's done entry first", len(got), got[0], queue)
	}
	// The newest offered ones, in order.
	for i, it := range got[1:] {
		if want := uint16(1000 + offered - (queue - 1) + i); it.e.Client.Port() != want {
			t.Fatalf("entry %d: client port %d, want %d", i+1, it.e.Client.Port(), want)
		}
	}
}

// TestJoinDump: a node that starts after its peer learns the peer's moved
// flows and live persistence entries from it.
func TestJoinDump(t *testing.T) {
	t.Parallel()
	c1, c2 := listen(t, "127.0.0.1"), listen(t, "127.0.0.1")
	a := start(t, "lb1", c1, 10, 7, nil, addrOf(c2))
	moved := flow("10.1.2.3:40000", 80, 6)
	stays := flow("10.1.2.4:40000", 80, 6)
	idle := flow("10.1.2.5:40000", 80, 6)
	moved2 := flow("10.1.2.6:5000", 53, 17)
	a.table.mu.Lock()
	now := time.Now()
	a.table.flows[moved] = fakeFlow{slot: 12, seen: now}
	a.table.flows[stays] = fakeFlow{slot: 10, seen: now} // what the ring picks (res.pick 0)
	a.table.flows[idle] = fakeFlow{slot: 11, seen: now.Add(-DefaultFlowTimeout)}
	a.table.flows[moved2] = fakeFlow{slot: 11, seen: now}
	a.table.persists[persistKey{7, netip.MustParseAddr("10.1.2.0")}] = fakePersist{backend: backends[1]}
	a.table.persists[persistKey{7, netip.MustParseAddr("10.1.3.0")}] = fakePersist{backend: backends[2], age: time.Hour}
	a.table.persists[persistKey{99, netip.MustParseAddr("10.1.4.0")}] = fakePersist{backend: backends[2]}
	a.table.mu.Unlock()
	b := start(t, "lb2", c2, 20, 3, nil, addrOf(c1))
	st := waitStatus(t, b.s, "lb2 joined", func(s Status) bool { return !s.Peers[0].Joined.IsZero() })
	if diff := cmp.Diff(map[Flow]uint32{moved: 22, moved2: 21}, b.table.flowSlots()); diff != "" {
		t.Errorf("lb2's flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[persistKey]netip.Addr{{3, netip.MustParseAddr("10.1.2.0")}: backends[1]}, b.table.persistBackends(),
		cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("lb2's persistence entries (-want +got):\n%s", diff)
	}
	if st.Installed != 3 {
		t.Errorf("lb2 installed %d, want 3", st.Installed)
	}
	if st := a.s.Status(); st.Dumps != 1 {
		t.Errorf("lb1 dumped %d times, want 1", st.Dumps)
	}
}

// TestRingChanged: after a ring change, the flows of that service that
// the new ring would send elsewhere go to the peer, and only those.
func TestRingChanged(t *testing.T) {
	t.Parallel()
	a, b := pair(t, nil, nil)
	waitStatus(t, a.s, "lb1 joined", func(s Status) bool { return !s.Peers[0].Joined.IsZero() })
	f1 := flow("10.1.2.3:40000", 80, 6)
	f2 := flow("10.1.2.4:40000", 80, 6)
	other := flow("10.1.2.5:5000", 53, 17)
	for _, f := range []Flow{f1, f2, other} {
		a.table.InsertFlow(f, 10)
	}
	a.res.setPick(f1, 11) // the new ring moves f1 but not f2
	a.res.setPick(other, 11)
	a.s.RingChanged(1)
	waitTable(t, b.table, "f1 on lb2", func() bool { return len(b.table.flowSlots()) > 0 })
	if diff := cmp.Diff(map[Flow]uint32{f1: 20}, b.table.flowSlots()); diff != "" {
		t.Errorf("lb2's flows (-want +got):\n%s", diff)
	}
	a.s.RingChanged(2)
	waitTable(t, b.table, "other on lb2", func() bool { return len(b.table.flowSlots()) > 1 })
	if diff := cmp.Diff(map[Flow]uint32{f1: 20, other: 20}, b.table.flowSlots()); diff != "" {
		t.Errorf("lb2's flows (-want +got):\n%s", diff)
	}
}

// TestNoEcho: a flow learnt from a peer is not sent back by this node's
// scans (the two would refresh each other's copy for ever) until a packet
// of it arrives here: then this node has taken it over.
func TestNoEcho(t *testing.T) {
	t.Parallel()
	a, b := pair(t, nil, nil)
	for _, n := range []*node{a, b} {
		waitStatus(t, n.s, n.s.opt.Node+" joined", func(s Status) bool { return !s.Peers[0].Joined.IsZero() })
	}
	f := flow("10.1.2.3:40000", 80, 6)
	a.table.InsertFlow(f, 12) // the ring picks slot 10
	a.s.RingChanged(1)
	waitTable(t, b.table, "f on lb2", func() bool { return len(b.table.flowSlots()) > 0 })
	sent := b.s.Status().Sent
	if err := b.s.scanFlows(t.Context(), nil, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if st := b.s.Status(); st.Queued != 0 || st.Sent != sent {
		t.Fatalf("lb2 sends lb1's flow back: %+v", st)
	}
	// lb2 takes the flow over: its packets arrive there.
	installed := a.s.Status().Installed
	// The copy arrived a while ago (rather than sleeping here).
	b.s.lmu.Lock()
	b.s.learned[f] = b.s.learned[f].Add(-time.Second)
	b.s.lmu.Unlock()
	b.table.touch(f)
	if err := b.s.scanFlows(t.Context(), nil, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.s, "lb1 getting the flow back", func(s Status) bool { return s.Installed == installed+1 })
}

// TestPersistOnce: a client's burst of connections sends its persistence
// entry once; another client's, or another backend, is sent.
func TestPersistOnce(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Node: "lb1", Conn: listen(t, "127.0.0.1"), Table: newFakeTable(), Resolver: &fakeResolver{slotBase: 10, groupID: 7}})
	if err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		return s.queued()
	}
	for i := range 10 {
		s.newFlow(NewFlow{Flow: flow(fmt.Sprintf("10.1.2.%d:%d", i, 40000+i), 80, 6), Slot: 10, Service: 1})
	}
	if n := queued(); n != 1 {
		t.Errorf("10 ring flows of one /24 queued %d entries, want 1", n)
	}
	s.newFlow(NewFlow{Flow: flow("10.1.3.1:40000", 80, 6), Slot: 10, Service: 1})
	s.newFlow(NewFlow{Flow: flow("10.1.2.1:40000", 80, 6), Slot: 11, Service: 1})
	if n := queued(); n != 3 {
		t.Errorf("another client and another backend: %d entries queued, want 3", n)
	}
	s.newFlow(NewFlow{Flow: flow("10.1.2.1:40001", 80, 6), Slot: 11, Service: 1, Persisted: true})
	if n := queued(); n != 4 {
		t.Errorf("a persisted flow: %d entries queued, want 4 (the flow, not its persistence entry again)", n)
	}
}
