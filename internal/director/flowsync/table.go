package flowsync

import (
	"context"
	"net/netip"
	"time"
)

// Table is the node's kernel flow and persistence tables; the daemon's is
// the loaded *xdp.Program, tests use a fake. The Syncer calls InsertFlow
// and InsertPersist from its receiving goroutine, and Flows and Persists
// from its scanning and dumping goroutines, concurrently with each other.
type Table interface {
	// InsertFlow pins f to slot, as if the kernel had just created it.
	InsertFlow(f Flow, slot uint32) error
	// Flows calls fn for each flow entry until fn returns false; idle is
	// how long ago the flow last saw a packet.
	Flows(fn func(f Flow, slot uint32, idle time.Duration) bool) error
	// InsertPersist makes the persistence group's entry for client (an
	// address already under the group's netmask) lead to backend.
	InsertPersist(group uint32, client, backend netip.Addr) error
	// Persists calls fn for each persistence entry until fn returns
	// false; age is how long ago a flow last used it.
	Persists(fn func(group uint32, client, backend netip.Addr, age time.Duration) bool) error
}

// Events is the kernel program's feed of flow creations
// (*xdp.Program.ReadNewFlows). The Syncer is its only reader: it calls
// ReadNewFlows once, from one goroutine, and fn must see every event.
type Events interface {
	// ReadNewFlows calls fn for each flow the program creates until ctx
	// ends; it returns nil then, or the error that stopped it.
	ReadNewFlows(ctx context.Context, fn func(NewFlow)) error
}

// Resolver maps between what travels (service by VIP, port and protocol;
// backend by address; persistence group by VIP and name hash) and this
// node's ids (service ring index, slot, group id). The control plane
// (internal/director) implements it. Its methods are called from several
// goroutines at once, concurrently with the control plane's changes; each
// answers from the state of one moment and never blocks for long.
type Resolver interface {
	// Service finds the service that takes f's packets (the exact port
	// first, then the VIP's port-0 service) and returns its ring index
	// and its persistence group id (0: no persistence).
	Service(f Flow) (id, group uint32, ok bool)
	// Pick is the slot service id's current ring gives f (what the
	// kernel would choose for f with no flow or persistence entry);
	// ok false when it cannot tell (then the flow is sent).
	Pick(id uint32, f Flow) (slot uint32, ok bool)
	// Slot is the slot of backend in service id; ok false when the
	// service has no such backend.
	Slot(id uint32, backend netip.Addr) (slot uint32, ok bool)
	// Backend is the address of slot's backend.
	Backend(slot uint32) (netip.Addr, bool)
	// Group describes persistence group id; GroupByKey finds the local
	// group a peer's entry names.
	Group(id uint32) (Group, bool)
	GroupByKey(k GroupKey) (Group, bool)
}

// GroupKey names a persistence group the same way on every node: its VIP
// and the GroupHash of its name (for a service with a table of its own,
// a name derived from the service's, identical on every node).
type GroupKey struct {
	VIP  netip.Addr
	Hash uint64
}

// NewGroupKey is the key of group name on vip.
func NewGroupKey(vip netip.Addr, name string) GroupKey {
	return GroupKey{VIP: vip.Unmap(), Hash: GroupHash(name)}
}

// Group is a persistence group as this node has it.
type Group struct {
	ID  uint32
	Key GroupKey
	// Bits4 and Bits6 are the group's netmask lengths: a client's
	// address is masked to them before it keys the table.
	Bits4, Bits6 uint8
	// Timeout is how long an entry lives after its last use; a dump
	// skips older ones.
	Timeout time.Duration
}

// mask is client under g's netmask.
func (g Group) mask(client netip.Addr) netip.Addr {
	client = client.Unmap()
	bits := int(g.Bits6)
	if client.Is4() {
		bits = int(g.Bits4)
	}
	if bits > client.BitLen() {
		bits = client.BitLen()
	}
	p, err := client.Prefix(bits)
	if err != nil {
		return client
	}
	return p.Addr()
}
