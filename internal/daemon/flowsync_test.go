package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// fakeKernels holds the flow sync side of each fakeDirector: its tables,
// new-flow feed and resolver, and the ring hook the daemon set.
var fakeKernels sync.Map // *fakeDirector → *fakeKernel

func (d *fakeDirector) FlowSync(ringChanged func(uint32)) (flowsync.Table, flowsync.Events, flowsync.Resolver) {
	v, _ := fakeKernels.LoadOrStore(d, &fakeKernel{})
	k := v.(*fakeKernel)
	k.mu.Lock()
	k.hook = ringChanged
	k.mu.Unlock()
	return k, k, k
}

func (d *fakeDirector) kernel() *fakeKernel {
	v, _ := fakeKernels.Load(d)
	k, _ := v.(*fakeKernel)
	return k
}

// syncFlow is the one flow the fake kernel's table holds: pinned to
// slot 2 (backend 10.0.0.2) while the ring picks slot 1 for it, so a
// scan after a ring change sends it.
var syncFlow = flowsync.Flow{Src: netip.MustParseAddrPort("198.51.100.7:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:80"), Proto: 6}

// fakeKernel is a director's flow table (one flow), new-flow feed and
// resolver (service 1 on 192.0.2.10:80, slots 1 and 2 for 10.0.0.1 and
// 10.0.0.2).
type fakeKernel struct {
	mu      sync.Mutex
	hook    func(uint32)
	readers int // ReadNewFlows running now
	maxRead int // most ever at once
	reads   int // ReadNewFlows calls
	// failReads: the first ones fail at once.
	failReads int
	inserted  map[flowsync.Flow]uint32
}

func (k *fakeKernel) ringChanged(id uint32) {
	k.mu.Lock()
	h := k.hook
	k.mu.Unlock()
	h(id)
}

func (k *fakeKernel) InsertFlow(f flowsync.Flow, slot uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inserted == nil {
		k.inserted = map[flowsync.Flow]uint32{}
	}
	k.inserted[f] = slot
	return nil
}

func (k *fakeKernel) Flows(fn func(flowsync.Flow, uint32, time.Duration) bool) error {
	fn(syncFlow, 2, time.Second)
	return nil
}

func (k *fakeKernel) InsertPersist(uint32, netip.Addr, netip.Addr) error {
	return errors.New("fake kernel: no persistence")
}

func (k *fakeKernel) Persists(func(uint32, netip.Addr, netip.Addr, time.Duration) bool) error {
	return nil
}

func (k *fakeKernel) ReadNewFlows(ctx context.Context, _ func(flowsync.NewFlow)) error {
	k.mu.Lock()
	k.reads++
	if k.reads <= k.failReads {
		k.mu.Unlock()
		return errors.New("fake kernel: new flows: bad file descriptor")
	}
	k.readers++
	k.maxRead = max(k.maxRead, k.readers)
	k.mu.Unlock()
	<-ctx.Done()
	k.mu.Lock()
	k.readers--
	k.mu.Unlock()
	return nil
}

func (k *fakeKernel) Service(f flowsync.Flow) (uint32, uint32, bool) {
	return 1, 0, f.Dst == syncFlow.Dst && f.Proto == 6
}

func (k *fakeKernel) Pick(uint32, flowsync.Flow) (uint32, bool) { return 1, true }

func (k *fakeKernel) Slot(_ uint32, b netip.Addr) (uint32, bool) {
	switch b {
	case netip.MustParseAddr("10.0.0.1"):
		return 1, true
	case netip.MustParseAddr("10.0.0.2"):
		return 2, true
	}
	return 0, false
}

func (k *fakeKernel) Backend(slot uint32) (netip.Addr, bool) {
	switch slot {
	case 1:
		return netip.MustParseAddr("10.0.0.1"), true
	case 2:
		return netip.MustParseAddr("10.0.0.2"), true
	}
	return netip.Addr{}, false
}

func (k *fakeKernel) Group(uint32) (flowsync.Group, bool) { return flowsync.Group{}, false }

func (k *fakeKernel) GroupByKey(flowsync.GroupKey) (flowsync.Group, bool) {
	return flowsync.Group{}, false
}

// syncPeer is a UDP socket standing for another director: it reads what
// the daemon's Syncer sends.
type syncPeer struct {
	t    *testing.T
	conn net.PacketConn
}

func newSyncPeer(t *testing.T) *syncPeer {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &syncPeer{t: t, conn: c}
}

func (p *syncPeer) addr() string { return p.conn.LocalAddr().String() }

// next waits for a datagram whose entries satisfy want, and returns it.
func (p *syncPeer) next(what string, want func(flowsync.Datagram) bool) flowsync.Datagram {
	p.t.Helper()
	buf := make([]byte, flowsync.MaxLen+1)
	deadline := time.Now().Add(10 * time.Second)
	p.conn.SetReadDeadline(deadline)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			p.t.Fatalf("%s: no such datagram within 10s: %v", what, err)
		}
		d, err := flowsync.Parse(buf[:n], nil)
		if err != nil {
			p.t.Fatalf("%s: a datagram that does not parse: %v", what, err)
		}
		if want(d) {
			return d
		}
	}
}

func hasKind(k flowsync.Kind) func(flowsync.Datagram) bool {
	return func(d flowsync.Datagram) bool {
		for _, e := range d.Entries {
			if e.Kind == k {
				return true
			}
		}
		return false
	}
}

// syncYAML is directorYAML with director.sync listening on listen and
// sending to peers ("" listen: no sync section).
func syncYAML(adminAddr, proxied, backend, listen string, peers ...string) string {
	y := directorYAML(adminAddr, "gate", "", proxied, backend)
	if listen == "" {
		return y
	}
	sync := fmt.Sprintf("director:\n  interfaces: [lo]\n  sync: { listen: %q, peers: [%s] }\n", listen, `"`+strings.Join(peers, `", "`)+`"`)
	return strings.Replace(y, "director: { interfaces: [lo] }\n", sync, 1)
}

// TestFlowSyncLifecycle: the Syncer runs only with director.sync.listen
// set, sends to the configured peers over UDP, hears the director's ring
// changes; a reload changing the peers starts a new one on the same
// socket; one whose listen address cannot be bound fails and leaves the
// running one as it was; removing the section stops it and frees the
// port.
func TestFlowSyncLifecycle(t *testing.T) {
	t.Parallel()
	adminAddr, proxied, backend := freeTCP(t), freeTCP(t), echoBackend(t, "b1")
	td, dirs := startDirectorDaemon(t, syncYAML(adminAddr, proxied, backend, ""))
	kd := dirs.last()
	if kd == nil {
		t.Fatal("no kernel director was made")
	}
	if st := td.d.Status(); st.Director == nil || st.Director.Sync != nil {
		t.Fatalf("without director.sync.listen: got director status %+v, want one without sync", st.Director)
	}
	if kd.kernel() == nil {
		t.Fatal("the daemon did not set the director's ring hook")
	}

	listen := freeport.UDP(t)
	p1, p2 := newSyncPeer(t), newSyncPeer(t)
	if err := td.reload(syncYAML(adminAddr, proxied, backend, listen, p1.addr())); err != nil {
		t.Fatal(err)
	}
	d := p1.next("join from the new Syncer", hasKind(flowsync.KindJoin))
	if d.Node != "lb1" {
		t.Errorf("datagram from node %q, want lb1 (node.name)", d.Node)
	}
	st := td.d.Status().Director.Sync
	if st == nil || st.Listen != listen || len(st.Peers) != 1 || st.Peers[0].Address != p1.addr() {
		t.Fatalf("sync status: got %+v, want listen %s, peer %s", st, listen, p1.addr())
	}
	// The director writes a ring: the flow the new ring moves is sent.
	kd.kernel().ringChanged(1)
	d = p1.next("the flow a ring change moves", hasKind(flowsync.KindFlow))
	for _, e := range d.Entries {
		if e.Kind == flowsync.KindFlow && (e.Client != syncFlow.Src || e.VIP != syncFlow.Dst || e.Backend != netip.MustParseAddr("10.0.0.2")) {
			t.Errorf("flow entry: got %+v, want %v → 10.0.0.2", e, syncFlow)
		}
	}

	// New peers: a new Syncer, on the socket the old one had.
	if err := td.reload(syncYAML(adminAddr, proxied, backend, listen, p2.addr())); err != nil {
		t.Fatal(err)
	}
	p2.next("join after the peers changed", hasKind(flowsync.KindJoin))
	st = td.d.Status().Director.Sync
	if st == nil || st.Listen != listen || len(st.Peers) != 1 || st.Peers[0].Address != p2.addr() {
		t.Fatalf("sync status after new peers: got %+v, want listen %s, peer %s", st, listen, p2.addr())
	}
	kd.kernel().ringChanged(1)
	p2.next("a ring change told to the new Syncer", hasKind(flowsync.KindFlow))
	// What a peer sends reaches the new Syncer through the kept socket.
	in := flowsync.Datagram{Node: "lb2", Seq: 1, Time: time.Now(), Entries: []flowsync.Entry{{
		Kind: flowsync.KindFlow, Proto: 6, Client: netip.MustParseAddrPort("198.51.100.8:1234"), VIP: syncFlow.Dst,
		Backend: netip.MustParseAddr("10.0.0.1")}}}
	b, err := in.Append(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.conn.WriteTo(b, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(listen))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the peer's flow installed", func() bool {
		kd.kernel().mu.Lock()
		defer kd.kernel().mu.Unlock()
		return kd.kernel().inserted[flowsync.Flow{Src: in.Entries[0].Client, Dst: syncFlow.Dst, Proto: 6}] == 1
	})
	// Another address is no peer: what it sends is dropped, and counted.
	stranger, err := net.ListenPacket("udp4", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	in.Seq++
	if b, err = in.Append(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.WriteTo(b, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(listen))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a datagram from a stranger dropped as not_peer", func() bool {
		return td.d.Status().Director.Sync.Dropped["not_peer"] == 1
	})
	st = td.d.Status().Director.Sync
	if p := st.Peers[0]; p.Node != "lb2" || p.LastHeard.IsZero() || st.Installed != 1 || st.Received != 1 {
		t.Errorf("sync status after the peer's datagram: got %+v, peer %+v; want 1 received and installed, peer lb2 heard", st, p)
	}
	m := scrape(t, adminAddr)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fulcrum_director_sync_entries_total", []string{"direction", "installed"}, 1},
		{"fulcrum_director_sync_entries_total", []string{"direction", "received"}, 1},
		{"fulcrum_director_sync_datagrams_total", []string{"direction", "received"}, 1},
		{"fulcrum_director_sync_dropped_total", []string{"reason", "not_peer"}, 1},
		{"fulcrum_director_sync_peer_last_heard_timestamp_seconds", []string{"peer", p2.addr()}, float64(st.Peers[0].LastHeard.UnixNano()) / 1e9},
	} {
		if got := m.sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := m.sum("fulcrum_director_sync_entries_total", "direction", "sent"); got < 1 {
		t.Errorf("fulcrum_director_sync_entries_total{direction=sent}: got %v, want at least 1", got)
	}

	// A listen address taken by another socket: the reload fails, the
	// running Syncer stays.
	taken, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = td.reload(syncYAML(adminAddr, proxied, backend, taken.LocalAddr().String(), p1.addr()))
	if err == nil || !strings.Contains(err.Error(), "director.sync.listen") {
		t.Fatalf("reload onto a bound port: got %v, want a director.sync.listen error", err)
	}
	st = td.d.Status().Director.Sync
	if st == nil || st.Listen != listen || len(st.Peers) != 1 || st.Peers[0].Address != p2.addr() {
		t.Fatalf("sync status after a failed reload: got %+v, want listen %s, peer %s as before", st, listen, p2.addr())
	}
	kd.kernel().ringChanged(1)
	p2.next("a ring change after the failed reload", hasKind(flowsync.KindFlow))

	// No sync section: the Syncer stops and frees its port.
	if err := td.reload(syncYAML(adminAddr, proxied, backend, "")); err != nil {
		t.Fatal(err)
	}
	if st := td.d.Status().Director; st == nil || st.Sync != nil {
		t.Fatalf("after removing director.sync: got %+v, want a director without sync", st)
	}
	c, err := net.ListenPacket("udp4", listen)
	if err != nil {
		t.Fatalf("the sync's port is still bound after the sync was turned off: %v", err)
	}
	c.Close()
	k := kd.kernel()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.maxRead != 1 || k.readers != 0 {
		t.Errorf("new-flow feed: got at most %d readers at once and %d left running, want 1 and 0", k.maxRead, k.readers)
	}
}

// TestFlowSyncStopsWithDirector: the reload that removes the last
// director service closes the director and stops its sync (the port is
// free); the sync comes back with the director, and stops at shutdown.
func TestFlowSyncStopsWithDirector(t *testing.T) {
	t.Parallel()
	adminAddr, proxied, backend := freeTCP(t), freeTCP(t), echoBackend(t, "b1")
	listen, peer := freeport.UDP(t), newSyncPeer(t)
	withSync := syncYAML(adminAddr, proxied, backend, listen, peer.addr())
	td, _ := startDirectorDaemon(t, withSync)
	peer.next("join", hasKind(flowsync.KindJoin))
	free := func() bool {
		c, err := net.ListenPacket("udp4", listen)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	if free() {
		t.Fatal("the sync's port is not bound while the sync runs")
	}
	noDirector := fmt.Sprintf("node: { name: lb1 }\nadmin: { listen: %q }\ndirector:\n  sync: { listen: %q, peers: [%q] }\nservices:\n%s",
		adminAddr, listen, peer.addr(), svcYAML("proxied", proxied, backend))
	if err := td.reload(noDirector); err != nil {
		t.Fatal(err)
	}
	if st := td.d.Status(); st.Director != nil || !free() {
		t.Fatalf("without director services: director status %+v, port free %v; want none and free", st.Director, free())
	}
	if err := td.reload(withSync); err != nil {
		t.Fatal(err)
	}
	if st := td.d.Status(); st.Director == nil || st.Director.Sync == nil || st.Director.Sync.Listen != listen {
		t.Fatalf("with the director back: got %+v, want the sync on %s", st.Director, listen)
	}
	td.stop(t)
	if !free() {
		t.Error("the sync's port is still bound after the daemon stopped")
	}
}

// TestFlowSyncFeedRestarts: a kernel new-flow feed that fails is read
// again (after 1 s); status and metrics show its failure, and that it
// runs again.
func TestFlowSyncFeedRestarts(t *testing.T) {
	t.Parallel()
	adminAddr, proxied, backend := freeTCP(t), freeTCP(t), echoBackend(t, "b1")
	td, dirs := startDirectorDaemon(t, syncYAML(adminAddr, proxied, backend, ""))
	k := dirs.last().kernel()
	k.mu.Lock()
	k.failReads = 1
	k.mu.Unlock()
	listen, p := freeport.UDP(t), newSyncPeer(t)
	if err := td.reload(syncYAML(adminAddr, proxied, backend, listen, p.addr())); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the feed read again after its failure", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.readers == 1
	})
	st := td.d.Status().Director.Sync
	if st.Feed != "running" || st.FeedFailures != 1 || !strings.Contains(st.FeedError, "bad file descriptor") || st.FeedLastFailure.IsZero() {
		t.Errorf("sync status: got feed %q, %d failures, error %q; want running after 1 failure, with its error", st.Feed, st.FeedFailures, st.FeedError)
	}
	m := scrape(t, adminAddr)
	if got := m.sum("fulcrum_director_sync_feed_failures_total"); got != 1 {
		t.Errorf("fulcrum_director_sync_feed_failures_total: got %v, want 1", got)
	}
	if !m.has("fulcrum_director_sync_feed_up") || m.sum("fulcrum_director_sync_feed_up") != 1 {
		t.Errorf("fulcrum_director_sync_feed_up: got %v, want 1", m.sum("fulcrum_director_sync_feed_up"))
	}
}
