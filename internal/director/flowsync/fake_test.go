package flowsync

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeTable is a node's kernel tables in memory.
type fakeTable struct {
	mu       sync.Mutex
	flows    map[Flow]fakeFlow
	persists map[persistKey]fakePersist
	changed  chan struct{}
}

// fakeFlow is a flow entry; its idle time is the time since seen, as
// the kernel's.
type fakeFlow struct {
	slot uint32
	seen time.Time
}

type persistKey struct {
	group  uint32
	client netip.Addr
}

type fakePersist struct {
	backend netip.Addr
	age     time.Duration
}

var _ Table = (*fakeTable)(nil)

func newFakeTable() *fakeTable {
	return &fakeTable{flows: map[Flow]fakeFlow{}, persists: map[persistKey]fakePersist{}, changed: make(chan struct{}, 1)}
}

func (t *fakeTable) notify() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *fakeTable) InsertFlow(f Flow, slot uint32) error {
	t.mu.Lock()
	t.flows[f] = fakeFlow{slot: slot, seen: time.Now()}
	t.mu.Unlock()
	t.notify()
	return nil
}

func (t *fakeTable) Flows(fn func(Flow, uint32, time.Duration) bool) error {
	t.mu.Lock()
	m := make(map[Flow]fakeFlow, len(t.flows))
	for k, v := range t.flows {
		m[k] = v
	}
	t.mu.Unlock()
	for k, v := range m {
		if !fn(k, v.slot, time.Since(v.seen)) {
			break
		}
	}
	return nil
}

// touch is a packet of f.
func (t *fakeTable) touch(f Flow) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.flows[f]
	e.seen = time.Now()
	t.flows[f] = e
}

func (t *fakeTable) InsertPersist(group uint32, client, backend netip.Addr) error {
	t.mu.Lock()
	t.persists[persistKey{group, client}] = fakePersist{backend: backend}
	t.mu.Unlock()
	t.notify()
	return nil
}

func (t *fakeTable) Persists(fn func(uint32, netip.Addr, netip.Addr, time.Duration) bool) error {
	t.mu.Lock()
	m := make(map[persistKey]fakePersist, len(t.persists))
	for k, v := range t.persists {
		m[k] = v
	}
	t.mu.Unlock()
	for k, v := range m {
		if !fn(k.group, k.client, v.backend, v.age) {
			break
		}
	}
	return nil
}

func (t *fakeTable) flowSlots() map[Flow]uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[Flow]uint32{}
	for k, v := range t.flows {
		out[k] = v.slot
	}
	return out
}

func (t *fakeTable) persistBackends() map[persistKey]netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[persistKey]netip.Addr{}
	for k, v := range t.persists {
		out[k] = v.backend
	}
	return out
}

// fakeResolver is one node's control plane: services 1 (VIP:80, with
// persistence group "shop") and 2 (VIP port 0, none), backends b1-b3
// whose slots start at slotBase, so that two nodes number them apart.
type fakeResolver struct {
	slotBase uint32
	groupID  uint32

	mu    sync.Mutex
	picks map[Flow]uint32 // what the ring picks; absent: pickAll
	pick  uint32
}

var (
	vip      = netip.MustParseAddr("192.168.0.105")
	backends = []netip.Addr{netip.MustParseAddr("192.168.0.101"), netip.MustParseAddr("192.168.0.102"), netip.MustParseAddr("192.168.0.103")}
)

var _ Resolver = (*fakeResolver)(nil)

func (r *fakeResolver) Service(f Flow) (uint32, uint32, bool) {
	switch {
	case f.Dst.Addr() != vip:
		return 0, 0, false
	case f.Dst.Port() == 80 && f.Proto == 6:
		return 1, r.groupID, true
	default:
		return 2, 0, true
	}
}

func (r *fakeResolver) setPick(f Flow, slot uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.picks == nil {
		r.picks = map[Flow]uint32{}
	}
	r.picks[f] = slot
}

func (r *fakeResolver) Pick(id uint32, f Flow) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.picks[f]; ok {
		return s, true
	}
	return r.slotBase + r.pick, true
}

// Slot: service 1 has b1-b3, service 2 only b1 and b2.
func (r *fakeResolver) Slot(id uint32, b netip.Addr) (uint32, bool) {
	for i, a := range backends {
		if a == b && (id == 1 || i < 2) {
			return r.slotBase + uint32(i), true
		}
	}
	return 0, false
}

func (r *fakeResolver) Backend(slot uint32) (netip.Addr, bool) {
	if slot < r.slotBase || slot >= r.slotBase+uint32(len(backends)) {
		return netip.Addr{}, false
	}
	return backends[slot-r.slotBase], true
}

func (r *fakeResolver) group() Group {
	return Group{ID: r.groupID, Key: NewGroupKey(vip, "shop"), Bits4: 24, Bits6: 64, Timeout: 300 * time.Second}
}

func (r *fakeResolver) Group(id uint32) (Group, bool) {
	if id != r.groupID {
		return Group{}, false
	}
	return r.group(), true
}

func (r *fakeResolver) GroupByKey(k GroupKey) (Group, bool) {
	if k != r.group().Key {
		return Group{}, false
	}
	return r.group(), true
}

// fakeEvents feeds new flows from a channel.
type fakeEvents chan NewFlow

func (e fakeEvents) ReadNewFlows(ctx context.Context, fn func(NewFlow)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e:
			fn(ev)
		}
	}
}

// node is one Syncer with its fakes.
type node struct {
	s      *Syncer
	table  *fakeTable
	res    *fakeResolver
	events fakeEvents
	conn   net.PacketConn
}

// listen opens a loopback socket for a node (on 127.0.0.x).
func listen(t *testing.T, host string) net.PacketConn {
	t.Helper()
	c, err := Listen(host + ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c net.PacketConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// start runs a Syncer for name on conn with peers until the test ends.
func start(t *testing.T, name string, conn net.PacketConn, slotBase, groupID uint32, mod func(*Options), peers ...netip.AddrPort) *node {
	t.Helper()
	n := &node{table: newFakeTable(), res: &fakeResolver{slotBase: slotBase, groupID: groupID}, events: make(fakeEvents), conn: conn}
	opt := Options{Node: name, Conn: conn, Peers: peers, Table: n.table, Resolver: n.res, Events: n.events}
	if mod != nil {
		mod(&opt)
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	n.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	})
	return n
}

// waitTable waits until cond holds for tb, re-checking on each insert.
func waitTable(t *testing.T, tb *fakeTable, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tb.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitStatus waits until cond holds for s's status.
func waitStatus(t *testing.T, s *Syncer, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter, not ordering events
	}
}
