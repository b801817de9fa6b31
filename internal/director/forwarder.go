package director

import (
	"net/netip"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// forwarder is what the control plane needs of the kernel program; the
// daemon's is the loaded *xdp.Program, tests use a fake.
//
// The writing methods are called with Director.mu held, so one at a time.
// Flows, SlotCounters and Global are called by status readers from any
// goroutine, concurrently with the writers and with each other.
type forwarder interface {
	SetService(ServiceKey, KService) error
	DeleteService(ServiceKey) error
	// SetRing replaces service id's ring: RingSize slot ids or NoSlot.
	SetRing(id uint32, ring []uint32) error
	// SetRingEntries sets entry idx[i] of service id's ring to slots[i],
	// leaving the other entries.
	SetRingEntries(id uint32, idx, slots []uint32) error
	SetReal(slot uint32, r Real) error
	// DeleteReal empties slot: flows pinned to it are rescheduled.
	DeleteReal(slot uint32) error
	// SetMember makes the persistence entries of service id that name
	// addr lead to slot; DeleteMember stops them leading anywhere.
	SetMember(id uint32, addr netip.Addr, slot uint32) error
	DeleteMember(id uint32, addr netip.Addr) error
	Flows(fn func(f Flow, slot uint32, idle time.Duration) bool) error
	SlotCounters(slot uint32) (Counters, error)
	Global() (map[string]uint64, error)
}

var _ forwarder = (*xdp.Program)(nil)
