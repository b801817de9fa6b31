package director

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// TestRingMatchesScheduler: for the same backends, weights and health,
// the ring sends a client hash to the backend the proxy's scheduler
// picks for it. For mh only while every backend is up: the proxy's mh
// keeps a down backend's entries and rehashes its clients, the ring is
// rebuilt without it (see docs/director.md).
func TestRingMatchesScheduler(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"maglev", "mh"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			bs := l.backends(1, 1, 2, 3, 4, 5, 6)
			if algo == "maglev" {
				bs[2].SetHealthy(false)
			}
			svc := balancerService(t, algo, bs, nil, nil)
			s := l.add(t, spec("web", algo), svc)
			ring := l.fw.ring(s.id)
			bySlot := map[uint32]*balancer.Backend{}
			for _, b := range bs {
				bySlot[slotOf(t, s, b)] = b
			}
			for i := range 20000 {
				client := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
				want, err := svc.Pick(client, netip.MustParseAddr("192.0.2.10"), &balancer.Tried{})
				if err != nil {
					t.Fatal(err)
				}
				// Both pick table[Mix(key) % size].
				e := ring[sched.Mix(sched.HashAddr(client))%RingSize]
				if got := bySlot[e]; got != want {
					t.Fatalf("client %s: ring gives %v, scheduler %s", client, got.Addr, want.Addr)
				}
			}
		})
	}
}

func TestRingWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		scheduler string
		weights   []int
		want      []float64
	}{
		{"wrr", "wrr", []int{1, 2, 3, 4}, []float64{0.1, 0.2, 0.3, 0.4}},
		{"maglev", "maglev", []int{1, 3}, []float64{0.25, 0.75}},
		{"rr ignores weights", "rr", []int{1, 3}, []float64{0.5, 0.5}},
		{"weight 0 is out", "wrr", []int{2, 0, 2}, []float64{0.5, 0, 0.5}},
		{"sh", "sh", []int{1, 1, 2}, []float64{0.25, 0.25, 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			bs := l.backends(1, tt.weights...)
			s := l.add(t, spec("web", tt.scheduler), balancerService(t, tt.scheduler, bs, nil, nil))
			c := shares(l.fw.ring(s.id))
			for i, b := range bs {
				got := float64(c[slotOf(t, s, b)]) / RingSize
				if math.Abs(got-tt.want[i]) > 0.01 {
					t.Errorf("backend %s: got %.4f of the ring, want %.4f", b.Addr, got, tt.want[i])
				}
			}
			if n := c[NoSlot]; n != 0 {
				t.Errorf("got %d empty entries, want 0", n)
			}
			l.fw.mu.Lock()
			hashSource := l.fw.services[s.key].HashSource
			l.fw.mu.Unlock()
			if want := tt.scheduler == "sh"; hashSource != want {
				t.Errorf("HashSource: got %v, want %v", hashSource, want)
			}
		})
	}
}

// TestRingMinimalDisruption: one of ten backends going down moves its
// own tenth of the entries and few others.
func TestRingMinimalDisruption(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	before := l.fw.ring(s.id)
	gone := slotOf(t, s, bs[4])
	bs[4].SetHealthy(false)
	refresh(t, s)
	after := l.fw.ring(s.id)
	var moved, others int
	for i := range after {
		if before[i] == after[i] {
			continue
		}
		moved++
		if before[i] != gone {
			others++
		}
		if after[i] == gone {
			t.Fatalf("entry %d still leads to the down backend", i)
		}
	}
	if f := float64(moved) / RingSize; f < 0.09 || f > 0.115 {
		t.Errorf("entries changed: got %.4f of the ring, want about 1/10", f)
	}
	t.Logf("changed %.4f, between survivors %.4f", float64(moved)/RingSize, float64(others)/RingSize)
	if f := float64(others) / RingSize; f > 0.01 {
		t.Errorf("entries moved between survivors: got %.4f of the ring, want < 0.01", f)
	}
	// Back up: the very ring of before.
	bs[4].SetHealthy(true)
	refresh(t, s)
	if got := changed(before, l.fw.ring(s.id)); got != 0 {
		t.Errorf("after the backend returned: %d entries differ from the first ring, want 0", got)
	}
}

// TestRingRebuildsOnlyOnChange: the loop's re-check writes nothing while
// nothing changed.
func TestRingRebuildsOnlyOnChange(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1, 1)
	s := l.add(t, spec("web", "wrr"), balancerService(t, "wrr", bs, nil, nil))
	writes := l.fw.ringWrites
	for range 3 {
		l.d.step()
	}
	if l.fw.ringWrites != writes {
		t.Fatalf("ring writes without a change: got %d, want %d", l.fw.ringWrites, writes)
	}
	bs[0].SetWeight(3)
	l.d.step()
	if l.fw.ringWrites != writes+1 {
		t.Fatalf("ring writes after a weight change: got %d, want %d", l.fw.ringWrites, writes+1)
	}
	if got := float64(shares(l.fw.ring(s.id))[slotOf(t, s, bs[0])]) / RingSize; math.Abs(got-0.6) > 0.01 {
		t.Errorf("share after weight 3 of 1+1+3: got %.4f, want 0.6", got)
	}
}

func TestRingTiers(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	primary := l.backends(1, 1, 1)
	backup := l.backends(11, 1, 1)
	fallback := l.backends(21, 1)[0]
	s := l.add(t, spec("web", "wrr"), balancerService(t, "wrr", primary, backup, fallback))
	only := func(what string, want ...*balancer.Backend) {
		t.Helper()
		c := shares(l.fw.ring(s.id))
		wantSlots := map[uint32]bool{}
		for _, b := range want {
			wantSlots[slotOf(t, s, b)] = true
			if c[slotOf(t, s, b)] == 0 {
				t.Errorf("%s: backend %s has no entry", what, b.Addr)
			}
		}
		if len(want) == 0 {
			wantSlots[NoSlot] = true
		}
		for e := range c {
			if !wantSlots[e] {
				t.Errorf("%s: ring holds slot %d (%d entries), want only %v", what, e, c[e], want)
			}
		}
	}
	only("primaries up", primary...)
	primary[0].SetHealthy(false)
	refresh(t, s)
	only("one primary up", primary[1])
	primary[1].SetAdminState(balancer.AdminDrain)
	refresh(t, s)
	only("no primary", backup...)
	backup[0].SetHealthy(false)
	backup[1].SetWeight(0)
	refresh(t, s)
	only("no backup", fallback)
	fallback.SetHealthy(false)
	refresh(t, s)
	only("nothing usable")
	primary[0].SetHealthy(true)
	refresh(t, s)
	only("a primary back", primary[0])
}

// TestQuiescentAndClose: a down backend leaves the ring at once; its slot
// stays valid (its flows continue) until CloseBackend, which the daemon
// calls after removal_grace for a service that is not quiescent; it is
// valid again when the backend returns.
func TestQuiescentAndClose(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	id := slotOf(t, s, bs[0])
	l.fw.addFlows(id, 3, time.Second)
	l.fw.addFlows(id, 2, testFlowTimeout+time.Second) // expired: not counted
	bs[0].SetHealthy(false)
	refresh(t, s)
	if shares(l.fw.ring(s.id))[id] != 0 {
		t.Fatal("a down backend is still in the ring")
	}
	if r, _ := l.fw.real(id); r.Dead {
		t.Fatal("a down backend's slot is dead before CloseBackend")
	}
	if got := s.BackendCounters(bs[0]).ActiveFlows; got != 3 {
		t.Errorf("active flows: got %d, want 3", got)
	}
	if got := s.CloseBackend(bs[0]); got != 3 {
		t.Errorf("CloseBackend: got %d flows, want 3", got)
	}
	if r, _ := l.fw.real(id); !r.Dead {
		t.Fatal("CloseBackend did not mark the slot dead")
	}
	l.d.step()
	if r, _ := l.fw.real(id); !r.Dead {
		t.Fatal("the loop revived the slot of a backend still down")
	}
	bs[0].SetHealthy(true)
	refresh(t, s)
	if r, _ := l.fw.real(id); r.Dead {
		t.Fatal("the slot of a backend back up is still dead")
	}
	if shares(l.fw.ring(s.id))[id] == 0 {
		t.Fatal("a backend back up is not in the ring")
	}
}

// TestRemovedBackend: a backend gone from the service leaves the ring at
// once, is dead after removal_grace and its slot is freed when no live
// flow names it; a quiescent service keeps its flows alive instead.
func TestRemovedBackend(t *testing.T) {
	t.Parallel()
	for _, quiescent := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiescent=%v", quiescent), func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			bs := l.backends(1, 1, 1, 1)
			sp := spec("web", "maglev")
			sp.Quiescent = quiescent
			s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
			id := slotOf(t, s, bs[2])
			l.fw.addFlows(id, 2, time.Second)
			if err := s.Update(balancerService(t, "maglev", bs[:2], nil, nil)); err != nil {
				t.Fatal(err)
			}
			if shares(l.fw.ring(s.id))[id] != 0 {
				t.Fatal("a removed backend is still in the ring")
			}
			l.clk.add(sp.RemovalGrace + time.Second)
			l.d.step()
			r, _ := l.fw.real(id)
			if r.Dead == quiescent {
				t.Fatalf("after removal_grace: dead %v, want %v", r.Dead, !quiescent)
			}
			if got := s.BackendCounters(bs[2]).ActiveFlows; got != 2 {
				t.Errorf("active flows of the removed backend: got %d, want 2", got)
			}
			// The slot is not handed out while flows name it...
			l.clk.add(2 * time.Second)
			l.d.step()
			more := l.backends(50, 1)
			if err := s.Update(balancerService(t, "maglev", append(bs[:2:2], more...), nil, nil)); err != nil {
				t.Fatal(err)
			}
			if got := slotOf(t, s, more[0]); got == id {
				t.Fatalf("new backend got slot %d, still named by live flows", id)
			}
			// ...and is once they have ended.
			l.fw.clearFlows()
			l.clk.add(2 * time.Second)
			l.d.step()
			if got := s.BackendCounters(bs[2]); got != (BackendCounters{}) {
				t.Errorf("freed backend's counters: got %+v, want zero", got)
			}
			if r, ok := l.fw.real(id); ok {
				t.Errorf("a freed slot is still in the kernel: %+v", r)
			}
			newer := l.backends(60, 1)
			if err := s.Update(balancerService(t, "maglev", append(bs[:2:2], append(more, newer...)...), nil, nil)); err != nil {
				t.Fatal(err)
			}
			if got := slotOf(t, s, newer[0]); got != id {
				t.Errorf("next backend got slot %d, want the freed %d", got, id)
			}
			if r, _ := l.fw.real(id); r.Dead || r.Addr != newer[0].Addr.Addr() {
				t.Errorf("reused slot: got %+v, want live and %s", r, newer[0].Addr.Addr())
			}
		})
	}
}

// TestSlotsStable: a reload that reorders backends or changes their
// *Backend keeps every backend's slot.
func TestSlotsStable(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	before := map[netip.AddrPort]uint32{}
	for _, b := range bs {
		before[b.Addr] = slotOf(t, s, b)
	}
	fresh := []*balancer.Backend{
		balancer.NewBackend(bs[2].Addr, 1, 0),
		balancer.NewBackend(bs[0].Addr, 1, 0),
		balancer.NewBackend(bs[1].Addr, 1, 0),
	}
	if err := s.Update(balancerService(t, "maglev", fresh, nil, nil)); err != nil {
		t.Fatal(err)
	}
	for _, b := range fresh {
		if got := slotOf(t, s, b); got != before[b.Addr] {
			t.Errorf("backend %s: slot %d after reload, want %d", b.Addr, got, before[b.Addr])
		}
	}
}

// TestUnresolvedOutOfRing: a backend whose next hop has no MAC yet is
// out of the ring until the loop finds it.
func TestUnresolvedOutOfRing(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	l.res.unset(bs[1].Addr.Addr())
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	id := slotOf(t, s, bs[1])
	if shares(l.fw.ring(s.id))[id] != 0 {
		t.Fatal("an unresolved backend is in the ring")
	}
	if _, ok := l.fw.real(id); ok {
		t.Fatal("an unresolved backend's slot was written")
	}
	want := BackendState{Reason: "next hop not resolved yet: no neighbour entry for 10.0.1.2"}
	if got := s.BackendState(bs[1]); got != want {
		t.Errorf("unresolved backend's state: got %+v, want %+v", got, want)
	}
	if got := s.BackendState(bs[0]); got != (BackendState{Forwarding: true}) {
		t.Errorf("resolved backend's state: got %+v, want forwarding", got)
	}
	l.res.set(bs[1].Addr.Addr())
	l.clk.add(time.Second)
	l.d.step()
	if shares(l.fw.ring(s.id))[id] == 0 {
		t.Fatal("a resolved backend is not in the ring")
	}
	if got := s.BackendState(bs[1]); got != (BackendState{Forwarding: true}) {
		t.Errorf("state once resolved: got %+v, want forwarding", got)
	}
	r, _ := l.fw.real(id)
	if r.Addr != bs[1].Addr.Addr() || r.IfIndex != 2 || r.DstMAC.String() != "02:01:0a:00:01:02" || r.SrcMAC.String() != "02:00:00:00:00:01" {
		t.Errorf("real: got %+v", r)
	}
}

// TestDirectNeedsOnLink: in direct mode a backend behind a router is out
// of the ring; in tunnel mode it is in, with the tunnel source.
func TestDirectNeedsOnLink(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeDirect, ModeTunnel} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			bs := l.backends(1, 1, 1)
			far := bs[1].Addr.Addr()
			h := l.res.hops[far]
			h.gateway = netip.MustParseAddr("10.0.0.254")
			l.res.hops[far] = h
			sp := spec("web", "maglev")
			sp.Mode = mode
			s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
			in := shares(l.fw.ring(s.id))[slotOf(t, s, bs[1])] > 0
			if in != (mode == ModeTunnel) {
				t.Errorf("backend behind a router in the ring: got %v, want %v", in, mode == ModeTunnel)
			}
			want := BackendState{Forwarding: true}
			if mode == ModeDirect {
				want = BackendState{Reason: "direct routing needs the backend on a network of this host; the route to it goes through 10.0.0.254"}
			}
			if got := s.BackendState(bs[1]); got != want {
				t.Errorf("state of the backend behind a router: got %+v, want %+v", got, want)
			}
			if mode == ModeTunnel {
				if r, _ := l.fw.real(slotOf(t, s, bs[1])); r.TunnelSrc != netip.MustParseAddr("10.0.0.1") {
					t.Errorf("tunnel source: got %v, want the egress address 10.0.0.1", r.TunnelSrc)
				}
			}
		})
	}
}

func TestTunnelSourceSetting(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.d.tunnelSrc = netip.MustParseAddr("10.9.9.9")
	bs := l.backends(1, 1)
	sp := spec("web", "maglev")
	sp.Mode = ModeTunnel
	s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	if r, _ := l.fw.real(slotOf(t, s, bs[0])); r.TunnelSrc != l.d.tunnelSrc {
		t.Errorf("tunnel source: got %v, want the configured %v", r.TunnelSrc, l.d.tunnelSrc)
	}
}

// TestTunnelMTU: a tunnel slot carries the egress interface's MTU, so the
// program compares instead of asking the kernel per packet; a next hop
// looked up again with another MTU rewrites it. Direct routing needs none.
func TestTunnelMTU(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1)
	sp := spec("tun", "maglev")
	sp.Mode = ModeTunnel
	s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	drb := l.backends(2, 1)
	dsp := spec("dr", "maglev")
	dsp.Port = 81
	dr := l.add(t, dsp, balancerService(t, "maglev", drb, nil, nil))
	if r, _ := l.fw.real(slotOf(t, s, bs[0])); r.MTU != 1500 {
		t.Errorf("tunnel MTU: got %d, want the interface's 1500", r.MTU)
	}
	if r, ok := l.fw.real(slotOf(t, dr, drb[0])); !ok || r.MTU != 0 {
		t.Errorf("direct-routing slot: %+v, %v; want written with MTU 0", r, ok)
	}
	l.res.mu.Lock()
	h := l.res.hops[bs[0].Addr.Addr()]
	h.mtu = 1400
	l.res.hops[bs[0].Addr.Addr()] = h
	l.res.mu.Unlock()
	l.clk.add(hopRefresh)
	l.d.step()
	if r, _ := l.fw.real(slotOf(t, s, bs[0])); r.MTU != 1400 {
		t.Errorf("tunnel MTU after the next hop's refresh: got %d, want 1400", r.MTU)
	}
}

// TestTunnelWithoutSource: a tunnel needs an outer source of the
// backend's family.
func TestTunnelWithoutSource(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	h := l.res.hops[bs[0].Addr.Addr()]
	h.src = netip.Addr{}
	l.res.hops[bs[0].Addr.Addr()] = h
	sp := spec("web", "maglev")
	sp.Mode = ModeTunnel
	s := l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	if shares(l.fw.ring(s.id))[slotOf(t, s, bs[0])] != 0 {
		t.Error("a backend without a tunnel source is in the ring")
	}
	want := BackendState{Reason: "no tunnel source: eth0 has no address of the backend's family and director.tunnel_source is not one"}
	if got := s.BackendState(bs[0]); got != want {
		t.Errorf("state without a tunnel source: got %+v, want %+v", got, want)
	}
	l.d.mu.Lock()
	l.d.tunnelSrc = netip.MustParseAddr("10.9.9.9")
	l.d.mu.Unlock()
	refresh(t, s)
	if shares(l.fw.ring(s.id))[slotOf(t, s, bs[0])] == 0 {
		t.Error("with tunnel_source set, the backend is still out of the ring")
	}
}

// TestRealWriteFailure: a backend whose slot cannot be written is out of
// the ring, and its state says why, until a write succeeds.
func TestRealWriteFailure(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	id := slotOf(t, s, bs[1])
	l.fw.mu.Lock()
	l.fw.realErr = errors.New("map full")
	l.fw.mu.Unlock()
	// The MAC changes: the slot must be written again, and that fails.
	a := bs[1].Addr.Addr()
	l.res.mu.Lock()
	h := l.res.hops[a]
	h.dstMAC = net.HardwareAddr{2, 9, 9, 9, 9, 9}
	l.res.hops[a] = h
	l.res.mu.Unlock()
	l.clk.add(hopRefresh)
	l.d.step()
	if shares(l.fw.ring(s.id))[id] != 0 {
		t.Error("a backend whose slot write failed is in the ring")
	}
	want := BackendState{Reason: "writing its slot into the kernel failed: map full"}
	if got := s.BackendState(bs[1]); got != want {
		t.Errorf("state: got %+v, want %+v", got, want)
	}
	l.fw.mu.Lock()
	l.fw.realErr = nil
	l.fw.mu.Unlock()
	l.clk.add(tick)
	l.d.step()
	if got := s.BackendState(bs[1]); got != (BackendState{Forwarding: true}) {
		t.Errorf("state after a successful write: got %+v, want forwarding", got)
	}
	if shares(l.fw.ring(s.id))[id] == 0 {
		t.Error("the backend is not back in the ring")
	}
}

// TestPersistenceGroups: services of one VIP with the same group share a
// group id; members are the backends in the ring.
func TestPersistenceGroups(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	mk := func(name string, vip string, port uint16, group string) *Service {
		sp := spec(name, "maglev")
		sp.VIP, sp.Port, sp.PersistGroup = netip.MustParseAddr(vip), port, group
		sp.PersistTimeout, sp.PersistBits4, sp.PersistBits6 = time.Minute, 24, 64
		return l.add(t, sp, balancerService(t, "maglev", bs, nil, nil))
	}
	http := mk("http", "192.0.2.10", 80, "shop")
	https := mk("https", "192.0.2.10", 443, "shop")
	other := mk("other", "192.0.2.11", 443, "shop")
	own := mk("own", "192.0.2.10", 8080, "")
	plain := l.add(t, func() ServiceSpec { sp := spec("plain", "maglev"); sp.Port = 9000; return sp }(), balancerService(t, "maglev", bs, nil, nil))
	group := func(s *Service) uint32 {
		l.fw.mu.Lock()
		defer l.fw.mu.Unlock()
		return l.fw.services[s.key].PersistGroup
	}
	if group(http) == 0 || group(http) != group(https) {
		t.Errorf("same VIP and group: got groups %d and %d, want one non-zero", group(http), group(https))
	}
	if group(other) == group(http) || group(own) == group(http) || group(own) == 0 {
		t.Errorf("other VIP / no group: got %d, %d; want distinct from %d and non-zero", group(other), group(own), group(http))
	}
	if group(plain) != 0 {
		t.Errorf("no persistence: got group %d, want 0", group(plain))
	}
	for _, b := range bs {
		got, ok := l.fw.member(https.id, b.Addr.Addr())
		if !ok || got != slotOf(t, https, b) {
			t.Errorf("member %s of https: got %d %v, want slot %d", b.Addr, got, ok, slotOf(t, https, b))
		}
	}
	bs[0].SetAdminState(balancer.AdminDrain)
	refresh(t, https)
	if _, ok := l.fw.member(https.id, bs[0].Addr.Addr()); ok {
		t.Error("a drained backend is still a persistence member")
	}
	if _, ok := l.fw.member(plain.id, bs[1].Addr.Addr()); ok {
		t.Error("a service without persistence has members")
	}
	if err := http.Remove(); err != nil {
		t.Fatal(err)
	}
	again := mk("http2", "192.0.2.10", 81, "shop")
	if group(again) != group(https) {
		t.Errorf("group after one of its services left: got %d, want %d", group(again), group(https))
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1)
	l.fw.counters[1] = Counters{Packets: 5, Bytes: 500, NewFlows: 1} // left by a former owner of slot 1
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	if slotOf(t, s, bs[1]) != 1 {
		t.Fatalf("slot of the second backend: got %d, want 1", slotOf(t, s, bs[1]))
	}
	l.fw.mu.Lock()
	l.fw.counters[0] = Counters{Packets: 10, Bytes: 1000, NewFlows: 2}
	l.fw.counters[1] = Counters{Packets: 7, Bytes: 800, NewFlows: 2}
	l.fw.mu.Unlock()
	l.fw.addFlows(0, 2, time.Second)
	if got, want := s.BackendCounters(bs[1]), (BackendCounters{Packets: 2, Bytes: 300, NewFlows: 1}); got != want {
		t.Errorf("backend counters: got %+v, want %+v", got, want)
	}
	if got, want := s.BackendCounters(bs[0]), (BackendCounters{Packets: 10, Bytes: 1000, NewFlows: 2, ActiveFlows: 2}); got != want {
		t.Errorf("backend counters: got %+v, want %+v", got, want)
	}
	if got, want := s.Counters(), (Counters{Packets: 12, Bytes: 1300, NewFlows: 3}); got != want {
		t.Errorf("service counters: got %+v, want %+v", got, want)
	}
}

func TestAddServiceErrors(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1)
	if _, err := l.d.AddService(spec("web", "lc"), balancerService(t, "lc", bs, nil, nil)); err == nil {
		t.Error("scheduler lc: got no error")
	}
	l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	if _, err := l.d.AddService(spec("web2", "maglev"), balancerService(t, "maglev", bs, nil, nil)); err == nil {
		t.Error("second service on the same VIP, port and protocol: got no error")
	}
}

// BenchmarkRebuild measures a full ring rebuild (Maglev table of ten
// backends and its conversion to slots), without the write.
func BenchmarkRebuild(b *testing.B) {
	pool := make([]*slot, 10)
	ws := make([]int32, 10)
	for i := range pool {
		pool[i] = &slot{id: uint32(i), b: balancer.NewBackend(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 80), 1, 0)}
		ws[i] = 1
	}
	for b.Loop() {
		buildRing(pool, ws)
	}
}
