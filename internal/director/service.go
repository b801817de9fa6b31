package director

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// Service is one programmed service. Its methods are safe for concurrent
// use; they serialise on the Director.
type Service struct {
	d     *Director
	spec  ServiceSpec
	key   ServiceKey
	id    uint32
	group *group // nil without persistence

	// The rest is guarded by d.mu.
	primary, backup []*slot
	fallback        *slot
	// retired are the slots of backends no longer in the service, kept
	// until no flow needs them.
	retired []*slot
	ring    []uint32 // as last written; nil before the first write
	input   []int32  // what ring was built from: tier, then weights
	removed bool

	// ringStale: the last ring write failed, maybe halfway; the kernel's
	// ring is not known to be ring, so the next write is whole.
	ringStale bool
}

// slot is one backend of one service in the kernel.
type slot struct {
	id       uint32
	b        *balancer.Backend
	fallback bool
	written  Real // as last written to the kernel
	// base is what the kernel had counted for the slot id when this
	// backend got it (a reused id does not start at zero).
	base   Counters
	wrote  bool
	dead   bool
	member bool // a persistence member of its service
	// retiredAt is when the slot left its service (zero while in it),
	// deadAt when it was marked dead.
	retiredAt, deadAt time.Time
	// unreachable is why the slot is out of the ring for want of a next
	// hop, as last logged ("" = reachable).
	unreachable string
	// writeErr is why the last write of its real failed ("" = it did
	// not); the slot is out of the ring until a write succeeds.
	writeErr string
}

func (sl *slot) addr() netip.Addr { return sl.b.Addr.Addr().Unmap() }

// Tiers of a ring: which backends it was built from.
const (
	tierNone int32 = iota
	tierPrimary
	tierBackup
	tierFallback
)

// weigher returns the weight a scheduler gives a usable backend in the
// ring.
//
//   - maglev, wrr: the effective weight (slow start included), as the
//     proxy's maglev table;
//   - rr: 1 for every backend;
//   - sh, mh: the configured weight. The ring is then hashed on the
//     client address (and port with hash_port), not the 5-tuple.
func weigher(scheduler string) (func(*balancer.Backend) int32, bool) {
	switch scheduler {
	case "maglev", "wrr":
		return func(b *balancer.Backend) int32 { return clamp(b.Weight()) }, true
	case "rr":
		return func(*balancer.Backend) int32 { return 1 }, true
	case "sh", "mh":
		return func(b *balancer.Backend) int32 { return clamp(b.ConfiguredWeight()) }, true
	}
	return nil, false
}

func clamp(w int) int32 { return int32(min(max(w, 0), 1<<30)) }

// Update makes svc the service's backends: new ones get a slot, those
// gone leave the ring at once and their slot is retired (see reap), and
// the ring is rebuilt. A backend is the same across updates when it has
// the same address and role (backend or fallback), whatever its *Backend.
func (s *Service) Update(svc *balancer.Service) error {
	s.d.mu.Lock()
	defer s.d.unlock()
	if s.removed {
		return fmt.Errorf("director: service %s: removed", s.spec.Name)
	}
	err := s.update(svc)
	if err2 := s.sync(); err2 != nil {
		err = errors.Join(err, err2)
	}
	if err != nil {
		return fmt.Errorf("director: service %s: %w", s.spec.Name, err)
	}
	return nil
}

// update matches svc's backends with the slots. d.mu must be held.
func (s *Service) update(svc *balancer.Service) error {
	type memberKey struct {
		addr     netip.AddrPort
		fallback bool
	}
	old := map[memberKey]*slot{}
	for _, sl := range s.slots() {
		old[memberKey{sl.b.Addr, sl.fallback}] = sl
	}
	var errs []error
	take := func(b *balancer.Backend, fallback bool) *slot {
		k := memberKey{b.Addr, fallback}
		sl := old[k]
		if sl != nil {
			delete(old, k)
			sl.b, sl.retiredAt = b, time.Time{}
			return sl
		}
		id, ok := s.d.slotIDs.get()
		if !ok {
			errs = append(errs, fmt.Errorf("backend %s: a director has at most %d slots", b.Addr, maxSlots))
			return nil
		}
		sl = &slot{id: id, b: b, fallback: fallback}
		sl.base, _ = s.d.fw.SlotCounters(id)
		return sl
	}
	pool := func(bs []*balancer.Backend) []*slot {
		out := make([]*slot, 0, len(bs))
		for _, b := range bs {
			if sl := take(b, false); sl != nil {
				out = append(out, sl)
			}
		}
		return out
	}
	s.primary = pool(svc.Primary())
	s.backup = pool(svc.Backup())
	s.fallback = nil
	if fb := svc.Fallback(); fb != nil {
		s.fallback = take(fb, true)
	}
	s.retired = s.retired[:0]
	now := s.d.now()
	for _, sl := range old {
		if sl.retiredAt.IsZero() {
			sl.retiredAt = now
			s.d.log.Info("backend left the service; its flows continue until it is retired", "service", s.spec.Name, "backend", sl.b.Addr, "slot", sl.id)
		}
		s.retired = append(s.retired, sl)
	}
	slices.SortFunc(s.retired, func(a, b *slot) int { return int(a.id) - int(b.id) })
	s.input = nil
	return errors.Join(errs...)
}

// slots lists every slot of s: members, fallback and retired. d.mu must
// be held.
func (s *Service) slots() []*slot {
	out := make([]*slot, 0, len(s.primary)+len(s.backup)+1+len(s.retired))
	out = append(out, s.primary...)
	out = append(out, s.backup...)
	if s.fallback != nil {
		out = append(out, s.fallback)
	}
	return append(out, s.retired...)
}

// Refresh asks the control loop to re-read the backends' health, admin
// state and weights now, rather than at its next tick (every 250 ms): the
// daemon calls it on a health transition or admin action. It returns at
// once; the ring follows within the time of one rebuild.
func (s *Service) Refresh() {
	select {
	case s.d.kick <- struct{}{}:
	default: // a re-read is already due
	}
}

// Sync is Refresh done before it returns: the rings follow the backends'
// states now. For an operator's drain or disable, whose caller is told the
// change is made and may open connections the next moment; the health
// monitor uses Refresh, which does not wait.
func (s *Service) Sync() { s.d.syncAll() }

// reachable reports whether the director knows how to send to sl's
// backend in s's mode, logging once when that changes. d.mu must be held.
func (s *Service) reachable(sl *slot) (*hopState, bool) {
	hs := s.d.hopFor(sl.addr())
	why := ""
	switch {
	case !hs.ok:
		why = hs.err.Error()
	case s.spec.Mode == ModeDirect && hs.h.gateway.IsValid():
		why = fmt.Sprintf("direct routing needs the backend on a network of this host; the route to it goes through %s", hs.h.gateway)
	case s.spec.Mode == ModeTunnel && !s.tunnelSource(sl.addr(), hs).IsValid():
		why = fmt.Sprintf("no tunnel source: %s has no address of the backend's family and director.tunnel_source is not one", hs.h.ifName)
	}
	if why != sl.unreachable {
		if why != "" {
			s.d.log.Warn("backend out of the ring: no way to reach it", "service", s.spec.Name, "backend", sl.b.Addr, "reason", why)
		} else {
			s.d.log.Info("backend reachable", "service", s.spec.Name, "backend", sl.b.Addr, "interface", hs.h.ifName, "mac", hs.h.dstMAC.String())
		}
		sl.unreachable = why
	}
	return hs, why == ""
}

// real is what the kernel should hold for sl, and whether it should be
// written: not while the next hop is unknown, unless only Dead changes.
func (s *Service) real(sl *slot, hs *hopState, ok bool) (Real, bool) {
	if !ok {
		if !sl.wrote {
			return Real{}, false
		}
		r := sl.written
		r.Dead = sl.dead
		return r, true
	}
	r := Real{
		Addr:    sl.addr(),
		DstMAC:  hs.h.dstMAC,
		SrcMAC:  hs.h.srcMAC,
		IfIndex: hs.h.ifIndex,
		Dead:    sl.dead,
	}
	if s.spec.Mode == ModeTunnel {
		r.TunnelSrc = s.tunnelSource(r.Addr, hs)
		r.MTU = hs.h.mtu
	}
	return r, true
}

// tunnelSource is the outer source of packets tunnelled to addr:
// director.tunnel_source when it is of addr's family, else the egress
// interface's address. Invalid when there is neither. d.mu must be held.
func (s *Service) tunnelSource(addr netip.Addr, hs *hopState) netip.Addr {
	if ts := s.d.tunnelSrc; ts.IsValid() && ts.Is4() == addr.Is4() {
		return ts
	}
	if hs.h.src.IsValid() && hs.h.src.Is4() == addr.Is4() {
		return hs.h.src
	}
	return netip.Addr{}
}

func sameReal(a, b Real) bool {
	return a.Addr == b.Addr && bytes.Equal(a.DstMAC, b.DstMAC) && bytes.Equal(a.SrcMAC, b.SrcMAC) &&
		a.IfIndex == b.IfIndex && a.TunnelSrc == b.TunnelSrc && a.MTU == b.MTU && a.Dead == b.Dead
}

// sync brings the kernel in line with the backends' state: slots' reals,
// the ring (rebuilt only when the usable set or a weight changed, written
// only when an entry changed) and the persistence members. d.mu must be
// held.
func (s *Service) sync() error {
	var errs []error
	usable := map[*slot]bool{}
	for _, sl := range s.slots() {
		if sl.dead && sl.retiredAt.IsZero() && !sl.b.Evicted() {
			sl.dead = false // back in service after CloseBackend
		}
		hs, ok := s.reachable(sl)
		if r, write := s.real(sl, hs, ok); write {
			switch {
			case sl.wrote && sameReal(r, sl.written):
				sl.writeErr = "" // the kernel has it
			default:
				if err := s.d.fw.SetReal(sl.id, r); err != nil {
					errs = append(errs, fmt.Errorf("slot %d (backend %s): %w", sl.id, sl.b.Addr, err))
					sl.writeErr = err.Error()
					ok = false
				} else {
					sl.written, sl.wrote, sl.writeErr = r, true, ""
				}
			}
		}
		usable[sl] = ok && sl.wrote && !sl.dead && sl.retiredAt.IsZero() && sl.b.Available()
	}
	weigh, _ := weigher(s.spec.Scheduler)
	tier, pool, weights := tierNone, []*slot(nil), []int32(nil)
	for i, p := range [][]*slot{s.primary, s.backup} {
		ws := make([]int32, len(p))
		any := false
		for j, sl := range p {
			if usable[sl] {
				ws[j] = weigh(sl.b)
				any = any || ws[j] > 0
			}
		}
		if any {
			tier, pool, weights = tierPrimary+int32(i), p, ws
			break
		}
	}
	if tier == tierNone && s.fallback != nil && usable[s.fallback] {
		tier, pool, weights = tierFallback, []*slot{s.fallback}, []int32{1}
	}
	input := append([]int32{tier}, weights...)
	if s.ring != nil && !s.ringStale && slices.Equal(input, s.input) {
		return errors.Join(errs...)
	}
	ring := buildRing(pool, weights)
	if n := changed(s.ring, ring); n > 0 || s.ringStale {
		if err := s.writeRing(ring, n); err != nil {
			s.ringStale = true
			return errors.Join(append(errs, fmt.Errorf("ring: %w", err))...)
		}
		if s.d.onRing != nil {
			s.d.rings = append(s.d.rings, s.id)
		}
		s.d.log.Info("ring rebuilt", "service", s.spec.Name, "backends", countIn(weights), "tier", tierName(tier), "entries_changed", n)
		s.ring, s.ringStale = ring, false
	}
	s.input = input
	// Persistence leads only to the backends the ring holds: a drained
	// or down backend gets no new flows, not even from its clients.
	if s.group != nil {
		member := map[*slot]bool{}
		if tier == tierPrimary || tier == tierBackup {
			for i, sl := range pool {
				member[sl] = weights[i] > 0
			}
		}
		for _, sl := range s.slots() {
			switch want := member[sl]; {
			case want && !sl.member:
				if err := s.d.fw.SetMember(s.id, sl.addr(), sl.id); err != nil {
					errs = append(errs, fmt.Errorf("persistence member %s: %w", sl.b.Addr, err))
					continue
				}
			case !want && sl.member:
				if err := s.d.fw.DeleteMember(s.id, sl.addr()); err != nil {
					errs = append(errs, fmt.Errorf("persistence member %s: %w", sl.b.Addr, err))
					continue
				}
			default:
				continue
			}
			sl.member = member[sl]
		}
	}
	return errors.Join(errs...)
}

// writeRing writes ring, which differs from s.ring in n entries, into the
// kernel: only those entries when they are fewer than half the ring (an
// entry costs the same either way), else the whole ring. d.mu must be
// held.
func (s *Service) writeRing(ring []uint32, n int) error {
	if s.ring == nil || s.ringStale || n >= RingSize/2 {
		return s.d.fw.SetRing(s.id, ring)
	}
	idx, slots := make([]uint32, 0, n), make([]uint32, 0, n)
	for i, e := range ring {
		if e != s.ring[i] {
			idx, slots = append(idx, uint32(i)), append(slots, e)
		}
	}
	return s.d.fw.SetRingEntries(s.id, idx, slots)
}

// buildRing fills a ring from pool's slots with these weights: the
// Maglev table of sched.MaglevTable over the backends' names, so the same
// on every node and the one the proxy's maglev scheduler uses. An empty
// pool gives a ring of NoSlot.
func buildRing(pool []*slot, weights []int32) []uint32 {
	ring := make([]uint32, RingSize)
	switch len(pool) {
	case 0:
		for i := range ring {
			ring[i] = NoSlot
		}
		return ring
	case 1:
		// One backend, or the fallback: every entry.
		for i := range ring {
			ring[i] = pool[0].id
		}
		return ring
	}
	names := make([]string, len(pool))
	for i, sl := range pool {
		names[i] = sl.b.Name()
	}
	for i, b := range sched.MaglevTable(names, weights) {
		ring[i] = NoSlot
		if b >= 0 {
			ring[i] = pool[b].id
		}
	}
	return ring
}

func countIn(ws []int32) int {
	n := 0
	for _, w := range ws {
		if w > 0 {
			n++
		}
	}
	return n
}

func tierName(t int32) string {
	return [...]string{"none", "primary", "backup", "fallback"}[t]
}

// changed counts the entries in which two rings differ (all of b when a
// is nil).
func changed(a, b []uint32) int {
	if a == nil {
		return len(b)
	}
	n := 0
	for i := range b {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// reap retires the slots of backends gone from the service: out of the
// ring at once; dead once removal_grace has passed (unless the service
// is quiescent: then their flows run until they end); freed when no live
// flow names them. counts is the flow table's count per slot, taken at
// at (nil: not counted this round). d.mu must be held.
func (s *Service) reap(counts map[uint32]int64, at time.Time) {
	now := s.d.now()
	kept := s.retired[:0]
	for _, sl := range s.retired {
		if !sl.dead && !s.spec.Quiescent && now.Sub(sl.retiredAt) >= s.spec.RemovalGrace {
			s.markDead(sl)
		}
		if s.d.freeable(sl, counts, at) {
			if sl.member {
				// sync deleted it unless that failed; try once more.
				if s.d.fw.DeleteMember(s.id, sl.addr()) == nil {
					sl.member = false
				}
			}
			if !sl.member {
				s.d.freeSlot(sl)
				s.d.log.Info("slot freed", "service", s.spec.Name, "backend", sl.b.Addr, "slot", sl.id)
				continue
			}
		}
		kept = append(kept, sl)
	}
	clear(s.retired[len(kept):])
	s.retired = kept
}

// markDead makes the kernel reschedule the flows pinned to sl at their
// next packet. d.mu must be held.
func (s *Service) markDead(sl *slot) {
	if sl.dead {
		return
	}
	sl.dead, sl.deadAt = true, s.d.now()
	if !sl.wrote {
		return
	}
	r := sl.written
	r.Dead = true
	if err := s.d.fw.SetReal(sl.id, r); err != nil {
		s.d.log.Warn("marking a slot dead failed", "service", s.spec.Name, "backend", sl.b.Addr, "error", err)
		return
	}
	sl.written = r
}

// find returns b's slot (member or retired), or nil. d.mu must be held.
func (s *Service) find(b *balancer.Backend) *slot {
	for _, sl := range s.slots() {
		if sl.b == b {
			return sl
		}
	}
	return nil
}

// CloseBackend moves the flows of b (taken out of a service that is not
// quiescent, once removal_grace has passed) to other backends at their
// next packet: its slot is marked dead, until b is back in service. It
// returns how many live flows were pinned to b.
func (s *Service) CloseBackend(b *balancer.Backend) int {
	s.d.mu.Lock()
	sl := s.find(b)
	if sl == nil || s.removed {
		s.d.mu.Unlock()
		return 0
	}
	s.markDead(sl)
	s.d.mu.Unlock()
	counts, _, _, err := s.d.activeFlows(true)
	if err != nil {
		s.d.log.Warn("counting the flows of a closed backend failed", "service", s.spec.Name, "backend", b.Addr, "error", err)
	}
	return int(counts[sl.id])
}

// Remove deletes the service from the kernel. Its slots are dead at once
// and freed when no flow names them.
func (s *Service) Remove() error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if s.removed {
		return nil
	}
	err := s.d.fw.DeleteService(s.key)
	s.remove()
	if err != nil {
		return fmt.Errorf("director: service %s: %w", s.spec.Name, err)
	}
	s.d.log.Info("service removed", "service", s.spec.Name, "vip", s.key.Addr, "port", s.key.Port)
	return nil
}

// remove releases what s holds in the Director. d.mu must be held.
func (s *Service) remove() {
	now := s.d.now()
	for _, sl := range s.slots() {
		if sl.member && s.d.fw.DeleteMember(s.id, sl.addr()) == nil {
			sl.member = false
		}
		if sl.retiredAt.IsZero() {
			sl.retiredAt = now
		}
		if !sl.wrote {
			s.d.slotIDs.put(sl.id)
			continue
		}
		s.markDead(sl)
		s.d.orphans = append(s.d.orphans, sl)
	}
	s.primary, s.backup, s.fallback, s.retired = nil, nil, nil, nil
	if s.group != nil {
		s.d.leaveGroup(s.group)
	}
	s.d.svcIDs.put(s.id)
	delete(s.d.services, s)
	s.removed = true
}

// Counters sums the kernel's counters of every backend of the service.
func (s *Service) Counters() Counters {
	s.d.mu.Lock()
	slots := s.slots()
	s.d.mu.Unlock()
	var c Counters
	for _, sl := range slots {
		k := s.d.slotCounters(sl)
		c.Packets += k.Packets
		c.Bytes += k.Bytes
		c.NewFlows += k.NewFlows
	}
	return c
}

// BackendCounters is what the kernel counted of b in this service.
func (s *Service) BackendCounters(b *balancer.Backend) BackendCounters {
	s.d.mu.Lock()
	sl := s.find(b)
	s.d.mu.Unlock()
	if sl == nil {
		return BackendCounters{}
	}
	k := s.d.slotCounters(sl)
	out := BackendCounters{Packets: k.Packets, Bytes: k.Bytes, NewFlows: k.NewFlows}
	if counts, _, _, err := s.d.activeFlows(false); err == nil {
		out.ActiveFlows = counts[sl.id]
	}
	return out
}

// BackendState reports whether the director can forward to b in this
// service, and why not: health, admin state and weight aside (the status
// shows those), a backend is left out of the ring while the way to it is
// unknown — no route, a route through a router in direct mode, no
// neighbour entry yet, no tunnel source of its family — or while its slot
// could not be written into the kernel.
func (s *Service) BackendState(b *balancer.Backend) BackendState {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	sl := s.find(b)
	switch {
	case sl == nil:
		return BackendState{Reason: "not a backend of the service"}
	case !sl.retiredAt.IsZero():
		return BackendState{Reason: "removed from the service"}
	case sl.unreachable != "":
		return BackendState{Reason: sl.unreachable}
	case sl.writeErr != "":
		return BackendState{Reason: "writing its slot into the kernel failed: " + sl.writeErr}
	case !sl.wrote:
		return BackendState{Reason: "not programmed yet"}
	}
	return BackendState{Forwarding: true}
}
