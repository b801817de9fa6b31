package director

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

func TestSyncResolver(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	sp := spec("web", "maglev")
	sp.PersistGroup, sp.PersistTimeout, sp.PersistBits4, sp.PersistBits6 = "shop", time.Minute, 24, 64
	web := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	all := spec("all", "sh")
	all.Port = 0
	any := l.add(t, all, balancerService(t, "sh", bs[:1], nil, nil))

	flow := func(port uint16) flowsync.Flow {
		return flowsync.Flow{Src: netip.MustParseAddrPort("198.51.100.7:40000"), Dst: netip.AddrPortFrom(sp.VIP, port), Proto: 6}
	}
	id, group, ok := l.d.Service(flow(80))
	if !ok || id != web.id || group != web.group.id {
		t.Errorf("Service(:80): got %d %d %v, want %d %d true", id, group, ok, web.id, web.group.id)
	}
	if id, group, ok = l.d.Service(flow(22)); !ok || id != any.id || group != 0 {
		t.Errorf("Service(:22): got %d %d %v, want the port-0 service %d, group 0", id, group, ok, any.id)
	}
	if _, _, ok = l.d.Service(flowsync.Flow{Src: flow(80).Src, Dst: flow(80).Dst, Proto: 17}); ok {
		t.Error("Service of a UDP flow: found one, want none")
	}
	f := flow(80)
	slot, ok := l.d.Pick(web.id, f)
	if want := l.fw.ring(web.id)[xdp.RingIndex(xdp.Flow(f), false, false)]; !ok || slot != want {
		t.Errorf("Pick: got %d %v, want %d", slot, ok, want)
	}
	s1 := slotOf(t, web, bs[1])
	if got, ok := l.d.Slot(web.id, bs[1].Addr.Addr()); !ok || got != s1 {
		t.Errorf("Slot: got %d %v, want %d", got, ok, s1)
	}
	if got, ok := l.d.Backend(s1); !ok || got != bs[1].Addr.Addr() {
		t.Errorf("Backend(%d): got %v %v, want %v", s1, got, ok, bs[1].Addr.Addr())
	}
	g, ok := l.d.Group(web.group.id)
	want := flowsync.Group{ID: web.group.id, Key: flowsync.NewGroupKey(sp.VIP, "shop"), Bits4: 24, Bits6: 64, Timeout: time.Minute}
	if !ok || g != want {
		t.Errorf("Group: got %+v %v, want %+v", g, ok, want)
	}
	if g, ok := l.d.GroupByKey(flowsync.NewGroupKey(sp.VIP, "shop")); !ok || g != want {
		t.Errorf("GroupByKey: got %+v %v, want %+v", g, ok, want)
	}
	if _, ok := l.d.GroupByKey(flowsync.NewGroupKey(sp.VIP, "other")); ok {
		t.Error("GroupByKey of an unknown group: found one")
	}
}

func TestApplyRefusesProgramSizes(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.d.node.opts = xdp.Options{FlowTableSize: 1024, FlowTimeout: testFlowTimeout}
	if err := l.d.Apply(config.Director{FlowTableSize: 2048}); err == nil {
		t.Error("flow_table_size changed: got no error")
	}
	if err := l.d.Apply(config.Director{FlowTimeout: config.Duration(time.Minute)}); err == nil {
		t.Error("flow_timeout changed: got no error")
	}
	if err := l.d.Apply(config.Director{XDPMode: "fast"}); err == nil {
		t.Error("xdp_mode fast: got no error")
	}
	bs := l.backends(1, 1)
	sp := spec("web", "maglev")
	sp.Mode = ModeTunnel
	s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	if err := l.d.Apply(config.Director{FlowTableSize: 1024, TunnelSource: "10.9.9.9"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := l.fw.real(slotOf(t, s, bs[0])); r.TunnelSrc != netip.MustParseAddr("10.9.9.9") {
		t.Errorf("tunnel source after Apply: got %v, want 10.9.9.9", r.TunnelSrc)
	}
}

// TestOnRingChange: every ring written is told, once, after the write
// and with the Director's lock free (the hook asks the Director back, as
// the Syncer's scan does); an update that leaves the ring as it was is
// not told.
func TestOnRingChange(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	var got []uint32
	var picked []uint32
	l.d.OnRingChange(func(id uint32) {
		got = append(got, id)
		// Under the lock this would deadlock; it must see the new ring.
		f := flowsync.Flow{Src: netip.MustParseAddrPort("198.51.100.7:40000"), Dst: netip.MustParseAddrPort("192.0.2.10:80"), Proto: 6}
		slot, _ := l.d.Pick(id, f)
		picked = append(picked, slot)
	})
	bs := l.backends(1, 1, 1)
	web := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	if want := []uint32{web.id}; !slices.Equal(got, want) {
		t.Fatalf("after AddService: got rings %v, want %v", got, want)
	}
	if err := web.Update(balancerService(t, "maglev", bs, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("an update with the same backends told rings %v, want only the first", got)
	}
	bs[0].SetHealthy(false)
	refresh(t, web)
	if want := []uint32{web.id, web.id}; !slices.Equal(got, want) {
		t.Fatalf("after a backend went down: got rings %v, want %v", got, want)
	}
	if s1 := slotOf(t, web, bs[1]); picked[1] != s1 {
		t.Errorf("the hook saw slot %d picked, want the only backend up's %d: it ran before the ring was written", picked[1], s1)
	}
}
