//go:build linux

package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	modeDirect = 1 // MODE_DIRECT in bpf/xdp.h
	modeTunnel = 2

	svcHashSource = 1
	svcHashPort   = 2

	realDead = 1
)

// addrWords is an address as the program keeps it: 16 bytes in network
// order (IPv4 in the first 4), read as native 32-bit words, and the family.
func addrWords(a netip.Addr) (w [4]uint32, family uint8) {
	a = a.Unmap()
	var b [16]byte
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
		family = 4
	} else {
		b = a.As16()
		family = 6
	}
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w, family
}

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// netPort is a port as it lies in packet memory, read as a native uint16.
func netPort(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func hostPort(p uint16) uint16 { return netPort(p) } // the swap is its own inverse

func checkProto(proto uint8) error {
	if proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_UDP {
		return fmt.Errorf("protocol %d: only TCP (6) and UDP (17)", proto)
	}
	return nil
}

func svcKey(k ServiceKey) (bpfSvcKey, error) {
	if !k.Addr.IsValid() {
		return bpfSvcKey{}, errors.New("no address")
	}
	if err := checkProto(k.Proto); err != nil {
		return bpfSvcKey{}, err
	}
	w, fam := addrWords(k.Addr)
	return bpfSvcKey{Addr: w, Port: netPort(k.Port), Proto: k.Proto, Family: fam}, nil
}

// SetService adds or replaces the service matched by k.
func (p *Program) SetService(k ServiceKey, s Service) error {
	key, err := svcKey(k)
	if err != nil {
		return fmt.Errorf("xdp: service %s: %w", k, err)
	}
	v := bpfSvc{Id: s.ID, Group: s.PersistGroup, PersistTimeoutNs: uint64(s.PersistTimeout),
		Bits4: s.PersistBits4, Bits6: s.PersistBits6}
	switch s.Mode {
	case ModeDirect:
		v.Mode = modeDirect
	case ModeTunnel:
		v.Mode = modeTunnel
	default:
		return fmt.Errorf("xdp: service %s: mode %s", k, s.Mode)
	}
	if s.HashSource {
		v.Flags |= svcHashSource
	}
	if s.HashPort {
		v.Flags |= svcHashPort
	}
	var errs []error
	if int(s.ID) >= p.opts.MaxServices {
		errs = append(errs, fmt.Errorf("id %d: at most %d services", s.ID, p.opts.MaxServices))
	}
	if s.PersistBits4 > 32 || s.PersistBits6 > 128 {
		errs = append(errs, fmt.Errorf("persistence netmask /%d, /%d out of range", s.PersistBits4, s.PersistBits6))
	}
	if s.PersistGroup != 0 && s.PersistTimeout <= 0 {
		errs = append(errs, errors.New("persistence without a timeout"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp: service %s: %w", k, err)
	}
	if err := p.objs.Services.Put(key, v); err != nil {
		return fmt.Errorf("xdp: service %s: %w", k, err)
	}
	return nil
}

// DeleteService removes the service matched by k; its packets go to the
// kernel from then on. Its ring and slots stay until overwritten.
func (p *Program) DeleteService(k ServiceKey) error {
	key, err := svcKey(k)
	if err != nil {
		return fmt.Errorf("xdp: service %s: %w", k, err)
	}
	if err := p.objs.Services.Delete(key); err != nil {
		return fmt.Errorf("xdp: delete service %s: %w", k, err)
	}
	return nil
}

// SetRing replaces ring id with ring (RingSize slot ids or NoSlot). Entries
// are written one by one as the kernel offers no swap of an array's part: a
// packet scheduled meanwhile sees either entry, both valid.
func (p *Program) SetRing(id uint32, ring []uint32) error {
	if len(ring) != RingSize {
		return fmt.Errorf("xdp: ring %d: %d entries, want %d", id, len(ring), RingSize)
	}
	idx := make([]uint32, RingSize)
	for i := range idx {
		idx[i] = uint32(i)
	}
	return p.SetRingEntries(id, idx, ring)
}

// SetRingEntries sets entry idx[i] of ring id to slots[i] (a slot id or
// NoSlot), leaving the others: what a ring change costs is then its
// changed entries, not the ring's 65,537. As with SetRing, a packet
// scheduled meanwhile sees the entry before or after.
func (p *Program) SetRingEntries(id uint32, idx, slots []uint32) error {
	if int(id) >= p.opts.MaxServices {
		return fmt.Errorf("xdp: ring %d: at most %d services", id, p.opts.MaxServices)
	}
	if len(idx) != len(slots) {
		return fmt.Errorf("xdp: ring %d: %d entries for %d slots", id, len(idx), len(slots))
	}
	keys := make([]uint32, len(idx))
	for i, e := range idx {
		if e >= RingSize {
			return fmt.Errorf("xdp: ring %d: entry %d out of range", id, e)
		}
		if s := slots[i]; s != NoSlot && int(s) >= p.opts.MaxSlots {
			return fmt.Errorf("xdp: ring %d: entry %d: slot %d out of range", id, e, s)
		}
		keys[i] = id*RingSize + e
	}
	if len(keys) == 0 {
		return nil
	}
	// One BPF_MAP_UPDATE_BATCH (arrays have it since Linux 5.6), else an
	// update per entry.
	_, err := p.objs.Rings.BatchUpdate(keys, slots, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = nil
		for i := range keys {
			if err = p.objs.Rings.Put(keys[i], slots[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("xdp: ring %d: %w", id, err)
	}
	return nil
}

// Ring reads ring id back from the kernel.
func (p *Program) Ring(id uint32) ([]uint32, error) {
	if int(id) >= p.opts.MaxServices {
		return nil, fmt.Errorf("xdp: ring %d: at most %d services", id, p.opts.MaxServices)
	}
	ring := make([]uint32, RingSize)
	for i := range ring {
		if err := p.objs.Rings.Lookup(id*RingSize+uint32(i), &ring[i]); err != nil {
			return nil, fmt.Errorf("xdp: ring %d: entry %d: %w", id, i, err)
		}
	}
	return ring, nil
}

// SetReal sets slot to r.
func (p *Program) SetReal(slot uint32, r Real) error {
	v, err := p.real(slot, r)
	if err != nil {
		return fmt.Errorf("xdp: slot %d: %w", slot, err)
	}
	if err := p.objs.Reals.Put(slot, v); err != nil {
		return fmt.Errorf("xdp: slot %d: %w", slot, err)
	}
	return nil
}

func (p *Program) real(slot uint32, r Real) (bpfReal, error) {
	var v bpfReal
	var errs []error
	if int(slot) >= p.opts.MaxSlots {
		errs = append(errs, fmt.Errorf("at most %d slots", p.opts.MaxSlots))
	}
	if !r.Addr.IsValid() {
		errs = append(errs, errors.New("no address"))
	}
	if len(r.DstMAC) != 6 || len(r.SrcMAC) != 6 {
		errs = append(errs, fmt.Errorf("MACs %q, %q: want 6 bytes each", r.DstMAC, r.SrcMAC))
	}
	if r.IfIndex <= 0 {
		errs = append(errs, fmt.Errorf("interface index %d", r.IfIndex))
	}
	if r.MTU < 0 || r.MTU > 65535 {
		errs = append(errs, fmt.Errorf("MTU %d", r.MTU))
	}
	if r.TunnelSrc.IsValid() && r.TunnelSrc.Unmap().Is4() != r.Addr.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("tunnel source %s and address %s of different families", r.TunnelSrc, r.Addr))
	}
	if err := errors.Join(errs...); err != nil {
		return v, err
	}
	v.Addr, v.Family = addrWords(r.Addr)
	if r.TunnelSrc.IsValid() {
		v.Tsrc, _ = addrWords(r.TunnelSrc)
	}
	copy(v.Dmac[:], r.DstMAC)
	copy(v.Smac[:], r.SrcMAC)
	v.Ifindex = uint32(r.IfIndex)
	v.Mtu = uint16(r.MTU)
	if r.Dead {
		v.Flags |= realDead
	}
	return v, nil
}

// DeleteReal empties slot: flows pinned to it are rescheduled and a ring
// entry naming it sends packets to the kernel.
func (p *Program) DeleteReal(slot uint32) error {
	if int(slot) >= p.opts.MaxSlots {
		return fmt.Errorf("xdp: slot %d: at most %d slots", slot, p.opts.MaxSlots)
	}
	if err := p.objs.Reals.Put(slot, bpfReal{}); err != nil {
		return fmt.Errorf("xdp: slot %d: %w", slot, err)
	}
	return nil
}

func memberKey(id uint32, addr netip.Addr) bpfMemberKey {
	w, fam := addrWords(addr)
	return bpfMemberKey{Svc: id, Addr: w, Family: fam}
}

// SetMember records that service id reaches backend addr through slot: a
// persistence entry naming addr (possibly made by another service of the
// group) sends this service's new flows there.
func (p *Program) SetMember(id uint32, addr netip.Addr, slot uint32) error {
	if !addr.IsValid() || int(slot) >= p.opts.MaxSlots {
		return fmt.Errorf("xdp: member %d/%s: bad address or slot %d", id, addr, slot)
	}
	if err := p.objs.Members.Put(memberKey(id, addr), slot); err != nil {
		return fmt.Errorf("xdp: member %d/%s: %w", id, addr, err)
	}
	return nil
}

// DeleteMember undoes SetMember.
func (p *Program) DeleteMember(id uint32, addr netip.Addr) error {
	if err := p.objs.Members.Delete(memberKey(id, addr)); err != nil {
		return fmt.Errorf("xdp: delete member %d/%s: %w", id, addr, err)
	}
	return nil
}

// Flow is a connection from a client to a VIP.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

func (f Flow) String() string { return fmt.Sprintf("%s->%s/%d", f.Src, f.Dst, f.Proto) }

func flowKey(f Flow) (bpfFlowKey, error) {
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Addr().Unmap().Is4() != f.Dst.Addr().Unmap().Is4() {
		return bpfFlowKey{}, fmt.Errorf("flow %s: bad addresses", f)
	}
	if err := checkProto(f.Proto); err != nil {
		return bpfFlowKey{}, fmt.Errorf("flow %s: %w", f, err)
	}
	src, fam := addrWords(f.Src.Addr())
	dst, _ := addrWords(f.Dst.Addr())
	return bpfFlowKey{Src: src, Dst: dst, Sport: netPort(f.Src.Port()), Dport: netPort(f.Dst.Port()),
		Proto: f.Proto, Family: fam}, nil
}

func keyFlow(k bpfFlowKey) Flow {
	return Flow{
		Src:   netip.AddrPortFrom(wordsAddr(k.Src, k.Family), hostPort(k.Sport)),
		Dst:   netip.AddrPortFrom(wordsAddr(k.Dst, k.Family), hostPort(k.Dport)),
		Proto: k.Proto,
	}
}

// InsertFlow pins f to slot as if its packet had just been seen (a flow
// learnt from a peer director).
func (p *Program) InsertFlow(f Flow, slot uint32) error {
	k, err := flowKey(f)
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	if int(slot) >= p.opts.MaxSlots {
		return fmt.Errorf("xdp: flow %s: slot %d out of range", f, slot)
	}
	if err := p.objs.Flows.Put(k, bpfFlow{Slot: slot, SeenNs: monotonic()}); err != nil {
		return fmt.Errorf("xdp: flow %s: %w", f, err)
	}
	return nil
}

// Flows calls fn for each flow in the table (expired ones included: idle
// tells) until fn returns false. The table changes meanwhile: a flow may be
// missed or seen twice.
func (p *Program) Flows(fn func(f Flow, slot uint32, idle time.Duration) bool) error {
	now := monotonic()
	err := each(p.objs.Flows, func(k *bpfFlowKey, v *bpfFlow) bool {
		return fn(keyFlow(*k), v.Slot, age(now, v.SeenNs))
	})
	if err != nil {
		return fmt.Errorf("xdp: flows: %w", err)
	}
	return nil
}

// each calls fn for the entries of m until it returns false, reading them
// thousands at a time (BPF_MAP_LOOKUP_BATCH, Linux 5.6) where the kernel
// can, else one by one: a table of 262,144 flows is then a few hundred
// system calls rather than half a million.
func each[K, V any](m *ebpf.Map, fn func(*K, *V) bool) error {
	const chunk = 4096
	keys, vals := make([]K, chunk), make([]V, chunk)
	var cursor ebpf.MapBatchCursor
	for first := true; ; first = false {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		if first && errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		for i := range n {
			if !fn(&keys[i], &vals[i]) {
				return nil
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !fn(&k, &v) {
			return nil
		}
	}
	return it.Err()
}

func age(now, seen uint64) time.Duration {
	if seen > now {
		return 0
	}
	return time.Duration(now - seen)
}

// InsertPersist records that group's clients of the network client (already
// masked) go to backend.
func (p *Program) InsertPersist(group uint32, client, backend netip.Addr) error {
	if group == 0 || !client.IsValid() || !backend.IsValid() {
		return fmt.Errorf("xdp: persistence %d/%s->%s: bad group or address", group, client, backend)
	}
	var k bpfPersistKey
	var v bpfPersist
	k.Group = group
	k.Addr, k.Family = addrWords(client)
	v.Addr, v.Family = addrWords(backend)
	v.SeenNs = monotonic()
	if err := p.objs.Persists.Put(k, v); err != nil {
		return fmt.Errorf("xdp: persistence %d/%s: %w", group, client, err)
	}
	return nil
}

// Persists calls fn for each persistence entry until fn returns false; age
// is the time since a flow last used it.
func (p *Program) Persists(fn func(group uint32, client, backend netip.Addr, age time.Duration) bool) error {
	now := monotonic()
	err := each(p.objs.Persists, func(k *bpfPersistKey, v *bpfPersist) bool {
		return fn(k.Group, wordsAddr(k.Addr, k.Family), wordsAddr(v.Addr, v.Family), age(now, v.SeenNs))
	})
	if err != nil {
		return fmt.Errorf("xdp: persistence: %w", err)
	}
	return nil
}
