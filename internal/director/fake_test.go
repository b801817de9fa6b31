package director

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// fakeFW records what the control plane programs, as the kernel's maps
// would hold it.
type fakeFW struct {
	mu       sync.Mutex
	services map[ServiceKey]KService
	rings    map[uint32][]uint32
	reals    map[uint32]Real
	members  map[memberAt]uint32
	flows    map[Flow]fakeFlow
	counters map[uint32]Counters
	// ringWrites counts ring writes (SetRing and SetRingEntries calls),
	// entriesWritten the entries they wrote.
	ringWrites, entriesWritten int
	// ringErr, when set, fails the next ring write halfway through.
	ringErr error
	// realErr, when set, fails every SetReal.
	realErr error
}

type memberAt struct {
	id   uint32
	addr netip.Addr
}

type fakeFlow struct {
	slot uint32
	idle time.Duration
}

var _ forwarder = (*fakeFW)(nil)

func newFakeFW() *fakeFW {
	return &fakeFW{
		services: map[ServiceKey]KService{},
		rings:    map[uint32][]uint32{},
		reals:    map[uint32]Real{},
		members:  map[memberAt]uint32{},
		flows:    map[Flow]fakeFlow{},
		counters: map[uint32]Counters{},
	}
}

func (f *fakeFW) SetService(k ServiceKey, s KService) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[k] = s
	return nil
}

func (f *fakeFW) DeleteService(k ServiceKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[k]; !ok {
		return fmt.Errorf("no service %v", k)
	}
	delete(f.services, k)
	return nil
}

func (f *fakeFW) SetRing(id uint32, ring []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ring) != RingSize {
		return fmt.Errorf("ring of %d entries", len(ring))
	}
	idx := make([]uint32, RingSize)
	for i := range idx {
		idx[i] = uint32(i)
	}
	return f.setEntries(id, idx, ring)
}

func (f *fakeFW) SetRingEntries(id uint32, idx, slots []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(idx) != len(slots) {
		return fmt.Errorf("%d entries for %d slots", len(idx), len(slots))
	}
	for _, e := range idx {
		if e >= RingSize {
			return fmt.Errorf("entry %d out of range", e)
		}
	}
	return f.setEntries(id, idx, slots)
}

// setEntries writes a ring's entries as the kernel's array holds them:
// a ring never written is zeros (slot 0). f.mu must be held.
func (f *fakeFW) setEntries(id uint32, idx, slots []uint32) error {
	r := f.rings[id]
	if r == nil {
		r = make([]uint32, RingSize)
		f.rings[id] = r
	}
	err := f.ringErr
	if err != nil {
		idx = idx[:len(idx)/2] // as a batch the kernel stopped halfway
		f.ringErr = nil
	}
	for i, e := range idx {
		r[e] = slots[i]
	}
	f.ringWrites++
	f.entriesWritten += len(idx)
	return err
}

func (f *fakeFW) SetReal(slot uint32, r Real) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.realErr != nil {
		return f.realErr
	}
	f.reals[slot] = r
	return nil
}

func (f *fakeFW) DeleteReal(slot uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.reals, slot)
	return nil
}

func (f *fakeFW) SetMember(id uint32, addr netip.Addr, slot uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[memberAt{id, addr}] = slot
	return nil
}

func (f *fakeFW) DeleteMember(id uint32, addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.members, memberAt{id, addr})
	return nil
}

func (f *fakeFW) Flows(fn func(Flow, uint32, time.Duration) bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range f.flows {
		if !fn(k, v.slot, v.idle) {
			break
		}
	}
	return nil
}

func (f *fakeFW) SlotCounters(slot uint32) (Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters[slot], nil
}

func (f *fakeFW) Global() (map[string]uint64, error) {
	return map[string]uint64{"tx": 1}, nil
}

// ring returns a copy of service id's ring.
func (f *fakeFW) ring(id uint32) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.rings[id]...)
}

func (f *fakeFW) real(slot uint32) (Real, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.reals[slot]
	return r, ok
}

func (f *fakeFW) member(id uint32, addr netip.Addr) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.members[memberAt{id, addr}]
	return s, ok
}

// addFlows pins n flows to slot, idle for idle.
func (f *fakeFW) addFlows(slot uint32, n int, idle time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		port := uint16(len(f.flows) + 1)
		k := Flow{
			Src:   netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), port),
			Dst:   netip.MustParseAddrPort("192.0.2.10:80"),
			Proto: 6,
		}
		f.flows[k] = fakeFlow{slot: slot, idle: idle}
	}
}

func (f *fakeFW) clearFlows() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.flows)
}

// fakeResolver answers from a table; an address missing from it is not
// resolved yet.
type fakeResolver struct {
	mu    sync.Mutex
	hops  map[netip.Addr]hop
	calls int
}

var _ resolver = (*fakeResolver)(nil)

func (r *fakeResolver) resolve(addr netip.Addr) (hop, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	h, ok := r.hops[addr]
	if !ok {
		return hop{}, fmt.Errorf("%w: no neighbour entry for %s", errUnresolved, addr)
	}
	return h, nil
}

// set makes addr resolvable, on-link, with a MAC derived from it.
func (r *fakeResolver) set(addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := addr.As16()
	r.hops[addr] = hop{
		ifIndex: 2,
		ifName:  "eth0",
		srcMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 1},
		dstMAC:  net.HardwareAddr{2, 1, a[12], a[13], a[14], a[15]},
		src:     netip.MustParseAddr("10.0.0.1"),
		mtu:     1500,
	}
}

func (r *fakeResolver) unset(addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.hops, addr)
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lab is a director over fakes whose loop the test steps by hand.
type lab struct {
	d   *Director
	fw  *fakeFW
	res *fakeResolver
	clk *clock
}

const testFlowTimeout = 300 * time.Second

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{
		fw:  newFakeFW(),
		res: &fakeResolver{hops: map[netip.Addr]hop{}},
		clk: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l.d = newDirector(l.fw, l.res, settings{flowTimeout: testFlowTimeout}, log)
	l.d.now = l.clk.now
	return l
}

// backends returns up backends 10.0.1.1:80, 10.0.1.2:80, ... with the
// given weights, all resolvable.
func (l *lab) backends(first int, weights ...int) []*balancer.Backend {
	bs := make([]*balancer.Backend, len(weights))
	for i, w := range weights {
		ap := netip.MustParseAddrPort(fmt.Sprintf("10.0.1.%d:80", first+i))
		bs[i] = balancer.NewBackend(ap, w, 0)
		l.res.set(ap.Addr())
	}
	return bs
}

func balancerService(t *testing.T, scheduler string, primary, backup []*balancer.Backend, fallback *balancer.Backend) *balancer.Service {
	t.Helper()
	svc, err := balancer.NewService(balancer.ServiceSpec{
		Name:      "web",
		Protocol:  "tcp",
		Scheduler: scheduler,
		Listen:    netip.MustParseAddrPort("192.0.2.10:80"),
	}, primary, backup, fallback, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func spec(name, scheduler string) ServiceSpec {
	return ServiceSpec{
		Name:         name,
		VIP:          netip.MustParseAddr("192.0.2.10"),
		Port:         80,
		Proto:        6,
		Mode:         ModeDirect,
		Scheduler:    scheduler,
		RemovalGrace: 10 * time.Second,
	}
}

func (l *lab) add(t *testing.T, sp ServiceSpec, svc *balancer.Service) *Service {
	t.Helper()
	s, err := l.d.AddService(sp, svc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// slotOf returns b's slot id in s.
func slotOf(t *testing.T, s *Service, b *balancer.Backend) uint32 {
	t.Helper()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	sl := s.find(b)
	if sl == nil {
		t.Fatalf("backend %s has no slot", b.Addr)
	}
	return sl.id
}

// shares counts the ring entries of each slot.
func shares(ring []uint32) map[uint32]int {
	c := map[uint32]int{}
	for _, e := range ring {
		c[e]++
	}
	return c
}

// refresh calls s.Refresh and does what it asked the loop (not running
// in a lab) to do.
func refresh(t *testing.T, s *Service) {
	t.Helper()
	s.Refresh()
	select {
	case <-s.d.kick:
		s.d.syncAll()
	default:
		t.Fatal("Refresh did not ask the loop for a re-read")
	}
}
