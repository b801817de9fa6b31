package director

import (
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// The flow sync's Resolver: what travels between directors (services by
// VIP, port and protocol; backends by address; persistence groups by VIP
// and name) mapped to this node's ids. Each method answers under d.mu,
// from the state of one moment.

var _ flowsync.Resolver = (*Director)(nil)

// Service finds the service that takes f's packets, exact port first,
// then the VIP's port-0 service.
func (d *Director) Service(f flowsync.Flow) (id, group uint32, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.serviceFor(f.Dst, f.Proto)
	if s == nil {
		return 0, 0, false
	}
	if s.group != nil {
		group = s.group.id
	}
	return s.id, group, true
}

// serviceFor finds the service of dst and proto. d.mu must be held.
func (d *Director) serviceFor(dst netip.AddrPort, proto uint8) *Service {
	var any *Service
	for s := range d.services {
		if s.key.Addr != dst.Addr().Unmap() || s.key.Proto != proto {
			continue
		}
		if s.key.Port == dst.Port() {
			return s
		}
		if s.key.Port == 0 {
			any = s
		}
	}
	return any
}

// byID returns the service with ring index id. d.mu must be held.
func (d *Director) byID(id uint32) *Service {
	for s := range d.services {
		if s.id == id {
			return s
		}
	}
	return nil
}

// Pick is the slot service id's ring gives f now; ok is false when the
// ring sends f to the kernel.
func (d *Director) Pick(id uint32, f flowsync.Flow) (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.byID(id)
	if s == nil || s.ring == nil {
		return 0, false
	}
	e := s.ring[xdp.RingIndex(xdp.Flow(f), s.hashSource(), s.spec.HashPort)]
	return e, e != NoSlot
}

func (s *Service) hashSource() bool { return s.spec.Scheduler == "sh" || s.spec.Scheduler == "mh" }

// Slot is the slot of the backend at addr in service id: a backend or
// the fallback, not one that left the service.
func (d *Director) Slot(id uint32, addr netip.Addr) (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.byID(id)
	if s == nil {
		return 0, false
	}
	for _, sl := range s.slots() {
		if sl.retiredAt.IsZero() && sl.addr() == addr.Unmap() {
			return sl.id, true
		}
	}
	return 0, false
}

// Backend is the address of slot's backend.
func (d *Director) Backend(slot uint32) (netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.services {
		for _, sl := range s.slots() {
			if sl.id == slot {
				return sl.addr(), true
			}
		}
	}
	for _, sl := range d.orphans {
		if sl.id == slot {
			return sl.addr(), true
		}
	}
	return netip.Addr{}, false
}

// Group describes persistence group id.
func (d *Director) Group(id uint32) (flowsync.Group, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.groups {
		if g.id == id {
			return d.describe(g)
		}
	}
	return flowsync.Group{}, false
}

// GroupByKey finds the local group a peer's entry names.
func (d *Director) GroupByKey(k flowsync.GroupKey) (flowsync.Group, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.groups {
		if g.sync == k {
			return d.describe(g)
		}
	}
	return flowsync.Group{}, false
}

// describe is g as the flow sync knows it, with the settings of one of
// its services. d.mu must be held.
func (d *Director) describe(g *group) (flowsync.Group, bool) {
	for s := range d.services {
		if s.group == g {
			return flowsync.Group{
				ID:      g.id,
				Key:     g.sync,
				Bits4:   uint8(s.spec.PersistBits4),
				Bits6:   uint8(s.spec.PersistBits6),
				Timeout: s.spec.PersistTimeout,
			}, true
		}
	}
	return flowsync.Group{}, false
}

// OnRingChange makes fn hear the id of every service ring written from
// now on (the flow sync's Syncer.RingChanged: the flows the new ring
// picks differently for are to be sent). fn is called after the write,
// with no lock of the Director held, from the goroutine that changed the
// ring; it must not block. Set it before the services are added.
func (d *Director) OnRingChange(fn func(id uint32)) {
	d.mu.Lock()
	d.onRing = fn
	d.rings = nil
	d.mu.Unlock()
}

// unlock releases d.mu and then tells onRing of the rings written while
// it was held.
func (d *Director) unlock() {
	fn, rings := d.onRing, d.rings
	d.rings = nil
	d.mu.Unlock()
	for _, id := range rings {
		fn(id)
	}
}
