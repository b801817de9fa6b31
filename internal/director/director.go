// Package director is the control plane of fulcrum's kernel data plane:
// it turns the services whose forwarding is direct or tunnel into the
// state of the XDP forwarder (internal/director/xdp) — one ring of
// RingSize entries per service, filled with the same Maglev table the
// maglev scheduler builds (sched.MaglevTable), one slot per backend of a
// service carrying the MACs, interface and tunnel source of the way to
// it, and the persistence members — and keeps that state following
// health checks, admin actions, reloads and the neighbour table.
//
// Everything it changes in the kernel goes through the forwarder
// interface, and everything it reads of the host's network through the
// resolver interface, so its logic is tested without privileges.
package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// Limits of one director. The kernel's maps are sized from them when the
// program loads: the rings take maxServices × RingSize × 4 bytes (16 MiB).
const (
	maxServices = 64
	maxSlots    = 4096
	maxGroups   = 1 << 16
)

// Timing of the control loop.
const (
	// tick is how often the loop re-reads every backend's health, admin
	// state and weight (rebuilding a ring only when its usable set or a
	// weight changed), retries unresolved next hops and reaps retired
	// slots.
	tick = 250 * time.Millisecond
	// hopRefresh is how often a resolved next hop is looked up again, to
	// follow a changed route or MAC.
	hopRefresh = 30 * time.Second
	// flowCount is how long a count of the flow table is reused.
	flowCount = time.Second
)

// ServiceSpec is what the director needs of a service besides its
// backends.
type ServiceSpec struct {
	Name  string
	VIP   netip.Addr
	Port  uint16 // 0: every port of the VIP
	Proto uint8  // unix.IPPROTO_TCP or IPPROTO_UDP
	Mode  Mode
	// Scheduler is rr, wrr, maglev, sh or mh.
	Scheduler string
	HashPort  bool
	// PersistGroup names the persistence table shared by the services of
	// one VIP with the same group; "" = the service's own. Persistence is
	// on when PersistTimeout > 0.
	PersistGroup               string
	PersistTimeout             time.Duration
	PersistBits4, PersistBits6 int
	Quiescent                  bool
	RemovalGrace               time.Duration
}

// BackendCounters is what the kernel counts of one backend of a service.
type BackendCounters struct {
	Packets, Bytes, NewFlows uint64
	// ActiveFlows is the number of flow table entries pinned to the
	// backend that saw a packet within flow_timeout.
	ActiveFlows int64
}

// BackendState is whether the director forwards to a backend of a
// service (Service.BackendState).
type BackendState struct {
	// Forwarding: the director knows the way to the backend and has it
	// in the kernel; it is in the ring whenever its health, admin state
	// and weight let it be.
	Forwarding bool
	// Reason is why not, as the log said it ("next hop not resolved
	// yet: no neighbour entry for 10.0.0.5 on eth0"); "" when Forwarding.
	Reason string
}

// settings are the node settings the control plane uses.
type settings struct {
	flowTimeout  time.Duration
	tunnelSource netip.Addr // invalid: the egress interface's address
}

// Director programs one kernel forwarder. All methods are safe for
// concurrent use.
type Director struct {
	log *slog.Logger
	fw  forwarder
	res resolver
	// prog is fw when it is the kernel's (nil in tests); node is what New
	// or the last Apply set. Both are used by New, Apply and Close only,
	// which the daemon calls one at a time.
	prog *xdp.Program
	node node
	now  func() time.Time
	// flowTimeout is fixed for the program's life.
	flowTimeout time.Duration

	mu        sync.Mutex
	tunnelSrc netip.Addr
	services  map[*Service]bool
	svcIDs    *ids
	slotIDs   *ids
	groupIDs  *ids
	groups    map[groupKey]*group
	hops      map[netip.Addr]*hopState
	orphans   []*slot // slots of removed services, until freed
	// onRing is told of each ring written (OnRingChange); rings are the
	// ids written since d.mu was taken, told by unlock.
	onRing func(id uint32)
	rings  []uint32

	flowMu    sync.Mutex
	flowAt    time.Time
	flowSlots map[uint32]int64
	flowTotal int64
	flowErr   error

	// kick asks the loop to re-read the backends now (Service.Refresh).
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// hopState is the resolution of one backend address.
type hopState struct {
	h   hop
	ok  bool
	err error
	at  time.Time
	// fails counts the lookups failed in a row; retries back off.
	fails int
}

// due is how long after a lookup the next one is made: hopRefresh after
// a success; after a failure tick, doubling up to maxRetry.
func (hs *hopState) due() time.Duration {
	if hs.fails == 0 {
		return hopRefresh
	}
	return min(tick<<min(hs.fails-1, 8), maxRetry)
}

// maxRetry bounds the back-off of an unresolved next hop's lookups.
const maxRetry = 4 * time.Second

type groupKey struct {
	vip  netip.Addr
	name string
}

type group struct {
	key groupKey
	// sync is key as the flow sync names the group (a hash of the name),
	// computed once rather than per entry sent or received.
	sync flowsync.GroupKey
	id   uint32
	refs int
}

// newDirector returns a director over fw and res; start runs its loop.
func newDirector(fw forwarder, res resolver, set settings, log *slog.Logger) *Director {
	return &Director{
		log:         log.With("component", "director"),
		fw:          fw,
		res:         res,
		now:         time.Now,
		flowTimeout: set.flowTimeout,
		tunnelSrc:   set.tunnelSource,
		services:    map[*Service]bool{},
		svcIDs:      newIDs(0, maxServices),
		slotIDs:     newIDs(0, maxSlots),
		groupIDs:    newIDs(1, maxGroups),
		groups:      map[groupKey]*group{},
		hops:        map[netip.Addr]*hopState{},
		kick:        make(chan struct{}, 1),
	}
}

// start runs the control loop until stop.
func (d *Director) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.run(ctx)
}

// stop ends the control loop, if it runs.
func (d *Director) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
}

func (d *Director) run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.step()
		case <-d.kick:
			d.syncAll()
		}
	}
}

// step is one round of the control loop.
func (d *Director) step() {
	var counts map[uint32]int64
	var countedAt time.Time
	if d.reaping() {
		counts, _, countedAt, _ = d.activeFlows(false)
	}
	d.mu.Lock()
	defer d.unlock()
	d.refreshHops()
	d.syncLocked()
	for s := range d.services {
		s.reap(counts, countedAt)
	}
	d.reapOrphans(counts, countedAt)
}

// syncAll brings every service's ring and slots in line with its
// backends.
func (d *Director) syncAll() {
	d.mu.Lock()
	defer d.unlock()
	d.syncLocked()
}

func (d *Director) syncLocked() {
	for s := range d.services {
		if err := s.sync(); err != nil {
			d.log.Warn("programming the kernel forwarder failed", "service", s.spec.Name, "error", err)
		}
	}
}

// reaping reports whether some retired slot waits for its flows to end.
func (d *Director) reaping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.orphans) > 0 {
		return true
	}
	for s := range d.services {
		if len(s.retired) > 0 {
			return true
		}
	}
	return false
}

// hopFor returns the resolution of addr, resolving it now if it is new.
// d.mu must be held.
func (d *Director) hopFor(addr netip.Addr) *hopState {
	if hs := d.hops[addr]; hs != nil {
		return hs
	}
	hs := &hopState{}
	d.hops[addr] = hs
	d.resolve(addr, hs)
	return hs
}

// resolve looks addr up again. A next hop that was resolved and is being
// resolved again (its neighbour entry expired) keeps its last MAC
// meanwhile. d.mu must be held.
func (d *Director) resolve(addr netip.Addr, hs *hopState) {
	h, err := d.res.resolve(addr)
	hs.at = d.now()
	switch {
	case err == nil:
		hs.h, hs.ok, hs.err, hs.fails = h, true, nil, 0
	case errors.Is(err, errUnresolved) && hs.ok:
		hs.fails++ // keeps its MAC; looked up again soon
	default:
		hs.ok, hs.err = false, err
		hs.fails++
	}
}

// refreshHops retries the unresolved next hops, looks up again those
// resolved long ago, and forgets those no backend uses. d.mu must be held.
func (d *Director) refreshHops() {
	used := map[netip.Addr]bool{}
	for s := range d.services {
		for _, sl := range s.slots() {
			used[sl.addr()] = true
		}
	}
	now := d.now()
	for addr, hs := range d.hops {
		switch {
		case !used[addr]:
			delete(d.hops, addr)
		case now.Sub(hs.at) >= hs.due():
			d.resolve(addr, hs)
		}
	}
}

// activeFlows counts the flow table's live entries per slot, reusing a
// count younger than a second unless fresh is set.
func (d *Director) activeFlows(fresh bool) (map[uint32]int64, int64, time.Time, error) {
	d.flowMu.Lock()
	defer d.flowMu.Unlock()
	now := d.now()
	if !fresh && d.flowSlots != nil && now.Sub(d.flowAt) < flowCount {
		return d.flowSlots, d.flowTotal, d.flowAt, d.flowErr
	}
	counts := map[uint32]int64{}
	var total int64
	err := d.fw.Flows(func(_ Flow, slot uint32, idle time.Duration) bool {
		if idle < d.flowTimeout {
			counts[slot]++
			total++
		}
		return true
	})
	d.flowAt, d.flowSlots, d.flowTotal, d.flowErr = now, counts, total, err
	if err != nil {
		err = fmt.Errorf("director: reading the flow table: %w", err)
		d.flowErr = err
	}
	return counts, total, now, err
}

// AddService programs a service and its backends.
func (d *Director) AddService(spec ServiceSpec, svc *balancer.Service) (*Service, error) {
	if !spec.VIP.IsValid() {
		return nil, fmt.Errorf("director: service %s: no VIP", spec.Name)
	}
	if _, ok := weigher(spec.Scheduler); !ok {
		return nil, fmt.Errorf("director: service %s: scheduler %q: want rr, wrr, maglev, sh or mh", spec.Name, spec.Scheduler)
	}
	d.mu.Lock()
	defer d.unlock()
	key := ServiceKey{Addr: spec.VIP.Unmap(), Port: spec.Port, Proto: spec.Proto}
	for s := range d.services {
		if s.key == key {
			return nil, fmt.Errorf("director: service %s: %s port %d protocol %d is already service %s", spec.Name, key.Addr, key.Port, key.Proto, s.spec.Name)
		}
	}
	id, ok := d.svcIDs.get()
	if !ok {
		return nil, fmt.Errorf("director: service %s: a director programs at most %d services", spec.Name, maxServices)
	}
	s := &Service{d: d, spec: spec, key: key, id: id}
	if spec.PersistTimeout > 0 {
		g, err := d.joinGroup(spec)
		if err != nil {
			d.svcIDs.put(id)
			return nil, err
		}
		s.group = g
	}
	ks := KService{
		ID:             id,
		Mode:           spec.Mode,
		HashSource:     s.hashSource(),
		HashPort:       spec.HashPort,
		PersistTimeout: spec.PersistTimeout,
		PersistBits4:   uint8(spec.PersistBits4),
		PersistBits6:   uint8(spec.PersistBits6),
	}
	if s.group != nil {
		ks.PersistGroup = s.group.id
	}
	d.services[s] = true
	err := s.update(svc)
	if err == nil {
		// The ring before the service: no packet meets the last ring of a
		// service that had this id.
		if err = s.sync(); err == nil {
			err = d.fw.SetService(key, ks)
		}
	}
	if err != nil {
		s.remove()
		return nil, fmt.Errorf("director: service %s: %w", spec.Name, err)
	}
	d.log.Info("service programmed", "service", spec.Name, "vip", key.Addr, "port", key.Port, "id", id)
	return s, nil
}

// joinGroup returns the persistence group of spec, creating it when it is
// the first of its VIP and name. d.mu must be held.
func (d *Director) joinGroup(spec ServiceSpec) (*group, error) {
	k := groupKey{vip: spec.VIP.Unmap(), name: spec.PersistGroup}
	if k.name == "" {
		// A service's own table: a name no configured group can have.
		k.name = "\x00service " + spec.Name
	}
	if g := d.groups[k]; g != nil {
		g.refs++
		return g, nil
	}
	id, ok := d.groupIDs.get()
	if !ok {
		return nil, fmt.Errorf("director: service %s: out of persistence groups", spec.Name)
	}
	g := &group{key: k, sync: flowsync.NewGroupKey(k.vip, k.name), id: id, refs: 1}
	d.groups[k] = g
	return g, nil
}

func (d *Director) leaveGroup(g *group) {
	if g.refs--; g.refs == 0 {
		delete(d.groups, g.key)
		d.groupIDs.put(g.id)
	}
}

// reapOrphans frees the slots of removed services once no live flow
// names them. d.mu must be held.
func (d *Director) reapOrphans(counts map[uint32]int64, at time.Time) {
	kept := d.orphans[:0]
	for _, sl := range d.orphans {
		if !d.freeable(sl, counts, at) {
			kept = append(kept, sl)
			continue
		}
		d.freeSlot(sl)
	}
	clear(d.orphans[len(kept):])
	d.orphans = kept
}

// freeable reports whether a retired slot may be given to another
// backend: no entry of the flow table counted after it left its ring
// names it with a packet within flow_timeout, or it has been dead for
// flow_timeout (every entry naming it has expired or moved).
func (d *Director) freeable(sl *slot, counts map[uint32]int64, at time.Time) bool {
	if sl.dead && d.now().Sub(sl.deadAt) >= d.flowTimeout {
		return true
	}
	return counts != nil && at.Sub(sl.retiredAt) >= flowCount && counts[sl.id] == 0
}

// slotCounters reads sl's counters since its backend got it; zero when
// the kernel cannot be read. sl.id and sl.base never change, so d.mu need
// not be held.
func (d *Director) slotCounters(sl *slot) Counters {
	k, err := d.fw.SlotCounters(sl.id)
	if err != nil {
		return Counters{}
	}
	return Counters{
		Packets:  k.Packets - sl.base.Packets,
		Bytes:    k.Bytes - sl.base.Bytes,
		NewFlows: k.NewFlows - sl.base.NewFlows,
	}
}

// freeSlot releases sl's id, leaving it empty in the kernel so that a
// stale entry naming it is scheduled afresh. d.mu must be held.
func (d *Director) freeSlot(sl *slot) {
	if err := d.fw.DeleteReal(sl.id); err != nil {
		d.log.Warn("marking a freed slot dead failed; slot not reused", "backend", sl.b.Addr, "slot", sl.id, "error", err)
		return
	}
	d.slotIDs.put(sl.id)
}
