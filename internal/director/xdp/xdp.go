//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// RingSize is the number of entries of one service's ring (a prime, as the
// Maglev table of internal/sched).
const RingSize = 65537

// NoSlot in a ring entry means no usable backend: the packet goes to the
// kernel (XDP_PASS, counted as passed_no_backend).
const NoSlot = ^uint32(0)

// ServiceKey is what a packet is matched on: destination address, port and
// IP protocol. Port 0 matches every port of the address that has no service
// of its own.
type ServiceKey struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
}

func (k ServiceKey) String() string {
	return fmt.Sprintf("%s/%d", netip.AddrPortFrom(k.Addr, k.Port), k.Proto)
}

// Service is a virtual service's forwarding state.
type Service struct {
	ID         uint32 // ring index: entries [ID*RingSize, (ID+1)*RingSize)
	Mode       Mode
	HashSource bool // sh/mh: hash the client address (+ port if HashPort) instead of the 5-tuple
	HashPort   bool
	// PersistGroup 0 means no persistence; else the id of the persistence
	// table shared by every service with the same group.
	PersistGroup   uint32
	PersistTimeout time.Duration
	// PersistBits4/6 are the persistence netmask's prefix lengths.
	PersistBits4, PersistBits6 uint8
}

// Real is one backend of one service (a "slot").
type Real struct {
	Addr      netip.Addr       // backend address (tunnel: outer destination)
	DstMAC    net.HardwareAddr // next hop's MAC (direct routing: the backend's own)
	SrcMAC    net.HardwareAddr // egress interface's MAC
	IfIndex   int              // egress interface; == ingress: XDP_TX, else redirect
	TunnelSrc netip.Addr       // outer source (tunnel)
	// MTU is the IP MTU toward the backend for tunnelled packets; 0 means
	// the egress interface's. A packet that would not fit once
	// encapsulated goes to the kernel (passed_too_big).
	MTU int
	// Dead: flows pinned to this slot are rescheduled; the slot gets new
	// flows only from a ring that still names it.
	Dead bool
}

// Options size the program's maps; zero fields take the defaults. The
// kernel memory they take (measured on 6.18) is 512 KiB per service (its
// ring: the kernel keeps array entries 8 bytes apart) and 120 bytes per
// flow or persistence entry, little else: with the defaults, 32 MiB of
// rings, 30 MiB of flows and 7.5 MiB of persistence.
type Options struct {
	MaxServices      int           // services (rings); default 64
	MaxSlots         int           // reals over all services; default 4096
	FlowTableSize    int           // LRU flow entries; default 262144
	PersistTableSize int           // LRU persistence entries; default 65536
	FlowTimeout      time.Duration // a flow idle this long is new again; default 300s
	EventBufferSize  int           // bytes of the new-flow ring buffer, a power of 2; default 1 MiB
}

func (o Options) withDefaults() Options {
	if o.MaxServices == 0 {
		o.MaxServices = 64
	}
	if o.MaxSlots == 0 {
		o.MaxSlots = 4096
	}
	if o.FlowTableSize == 0 {
		o.FlowTableSize = 262144
	}
	if o.PersistTableSize == 0 {
		o.PersistTableSize = 65536
	}
	if o.FlowTimeout == 0 {
		o.FlowTimeout = 300 * time.Second
	}
	if o.EventBufferSize == 0 {
		o.EventBufferSize = 1 << 20
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.MaxServices < 1 || uint64(o.MaxServices)*RingSize > 1<<32-1 {
		errs = append(errs, fmt.Errorf("max services %d out of range", o.MaxServices))
	}
	if o.MaxSlots < 1 || uint64(o.MaxSlots) >= uint64(NoSlot) {
		errs = append(errs, fmt.Errorf("max slots %d out of range", o.MaxSlots))
	}
	if o.FlowTableSize < 1 {
		errs = append(errs, fmt.Errorf("flow table size %d out of range", o.FlowTableSize))
	}
	if o.PersistTableSize < 1 {
		errs = append(errs, fmt.Errorf("persistence table size %d out of range", o.PersistTableSize))
	}
	if o.FlowTimeout < time.Second {
		errs = append(errs, fmt.Errorf("flow timeout %s: at least 1s", o.FlowTimeout))
	}
	if s := o.EventBufferSize; s < 4096 || s&(s-1) != 0 {
		errs = append(errs, fmt.Errorf("event buffer size %d: a power of 2, at least 4096", s))
	}
	return errors.Join(errs...)
}

// Program is the loaded forwarder and its maps. Its methods may be called
// from any goroutine; the map updates are the kernel's (atomic per entry).
type Program struct {
	objs bpfObjects
	opts Options

	mu    sync.Mutex
	links map[string]*attachment // by interface name
}

type attachment struct {
	nsFD    int // the network namespace it was attached in
	ifindex int
	mode    AttachMode
}

// Load compiles nothing: it loads the committed object into the kernel with
// maps sized from o. Close frees it.
func Load(o Options) (*Program, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("xdp: options: %w", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("xdp: parse object: %w", err)
	}
	sizes := map[string]int{
		bpfMapServices:     2 * o.MaxServices, // a key per (VIP, port, proto); ids are reused
		bpfMapRings:        o.MaxServices * RingSize,
		bpfMapReals:        o.MaxSlots,
		bpfMapMembers:      o.MaxSlots,
		bpfMapFlows:        o.FlowTableSize,
		bpfMapPersists:     o.PersistTableSize,
		bpfMapSlotCounters: o.MaxSlots,
		bpfMapEvents:       o.EventBufferSize,
	}
	for name, n := range sizes {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("xdp: object has no map %s", name)
		}
		ms.MaxEntries = uint32(n)
	}
	if err := spec.Variables[bpfVarFlowTimeoutNs].Set(uint64(o.FlowTimeout)); err != nil {
		return nil, fmt.Errorf("xdp: flow timeout: %w", err)
	}
	tick, offset, err := calibrateClock()
	if err != nil {
		return nil, fmt.Errorf("xdp: clock: %w", err)
	}
	if err := spec.Variables[bpfVarTickNs].Set(tick); err != nil {
		return nil, fmt.Errorf("xdp: clock: %w", err)
	}
	if err := spec.Variables[bpfVarClockOffsetNs].Set(offset); err != nil {
		return nil, fmt.Errorf("xdp: clock: %w", err)
	}
	p := &Program{opts: o, links: map[string]*attachment{}}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdp: load: %+v", ve)
		}
		return nil, fmt.Errorf("xdp: load: %w", err)
	}
	return p, nil
}

// Options returns the options the program was loaded with, defaults filled.
func (p *Program) Options() Options { return p.opts }

// Close detaches the program from every interface and frees it and its maps.
func (p *Program) Close() error {
	p.mu.Lock()
	var errs []error
	for name, a := range p.links {
		if err := p.detach(a); err != nil {
			errs = append(errs, fmt.Errorf("xdp: detach %s: %w", name, err))
		}
		delete(p.links, name)
	}
	p.mu.Unlock()
	if err := p.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("xdp: close: %w", err))
	}
	return errors.Join(errs...)
}
