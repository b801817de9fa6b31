//go:build linux

// Package decap is fulcrum's IP-in-IP decapsulator for the real servers of
// a tunnelling director: an XDP program (bpf/decap.c) that strips an outer
// IPv4 or IPv6 header (protocol 4 or 41) addressed to this host from a
// packet whose inner destination is a VIP, and passes the inner packet to
// the kernel. It stands in for the kernel's ipip, sit and ip6_tunnel
// modules where those are missing.
//
// The program is attached over netlink (package xdplink), so it stays
// after `fulcrum realserver up` exits; it is found again by its program
// id, which `ip link` shows as "xdp id N", and its maps through the
// program.
package decap

//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror" decap bpf/decap.c -- -I./bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// ProgramName is the name the kernel knows the program by (`bpftool prog`).
const ProgramName = "decap"

// statNames names the counters of enum stat in bpf/decap.c, in order.
var statNames = []string{
	"decap_4in4",
	"decap_6in4",
	"decap_4in6",
	"decap_6in6",
	"passed_not_tunnel",
	"passed_not_local",
	"passed_not_vip",
	"passed_fragment",
	"passed_options",
	"passed_malformed",
	"passed_adjust_failed",
	"dropped_ecn",
}

// ErrNotOurs is wrapped by the errors about an interface whose XDP
// program is not the one expected (another one, or none).
var ErrNotOurs = errors.New("not fulcrum's decapsulator")

// Program is a loaded decapsulator and its maps. Its methods may not be
// called concurrently.
type Program struct {
	prog                *ebpf.Program
	locals, vips, stats *ebpf.Map
}

// Load loads the program into the kernel, with empty maps; it passes
// every packet until SetLocals and SetVIPs fill them.
func Load() (*Program, error) {
	var objs decapObjects
	if err := loadDecapObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("decap: load: %w", err)
	}
	return &Program{prog: objs.Decap, locals: objs.Locals, vips: objs.Vips, stats: objs.Stats}, nil
}

// Open finds the decapsulator attached to the interface with index
// ifindex, whose program id is id (as Attach returned it). It fails,
// wrapping ErrNotOurs, when that interface has no program or another one.
func Open(ifindex int, id ebpf.ProgramID) (*Program, error) {
	got, _, err := xdplink.Attached(ifindex)
	if err != nil {
		return nil, fmt.Errorf("decap: %w", err)
	}
	if got != id {
		return nil, fmt.Errorf("decap: interface %d has xdp program %d, want %d: %w", ifindex, got, id, ErrNotOurs)
	}
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return nil, fmt.Errorf("decap: program %d: %w", id, err)
	}
	p := &Program{prog: prog}
	if err := p.openMaps(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Program) openMaps() error {
	info, err := p.prog.Info()
	if err != nil {
		return fmt.Errorf("decap: program info: %w", err)
	}
	if info.Name != ProgramName {
		return fmt.Errorf("decap: program is %q: %w", info.Name, ErrNotOurs)
	}
	ids, _ := info.MapIDs()
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return fmt.Errorf("decap: map %d: %w", id, err)
		}
		mi, err := m.Info()
		if err != nil {
			m.Close()
			return fmt.Errorf("decap: map %d: %w", id, err)
		}
		switch mi.Name {
		case "locals":
			p.locals = m
		case "vips":
			p.vips = m
		case "stats":
			p.stats = m
		default:
			m.Close()
		}
	}
	if p.locals == nil || p.vips == nil || p.stats == nil {
		return fmt.Errorf("decap: program %s lacks its maps: %w", info.Name, ErrNotOurs)
	}
	return nil
}

// ID is the kernel's id of the program.
func (p *Program) ID() (ebpf.ProgramID, error) {
	id, err := xdplink.ProgramID(p.prog)
	if err != nil {
		return 0, fmt.Errorf("decap: %w", err)
	}
	return id, nil
}

// SetLocals makes addrs the outer destinations the program accepts: this
// host's addresses the director tunnels to. Other entries go.
func (p *Program) SetLocals(addrs []netip.Addr) error {
	return setAll(p.locals, addrs)
}

// SetVIPs makes addrs the inner destinations the program accepts.
func (p *Program) SetVIPs(addrs []netip.Addr) error {
	return setAll(p.vips, addrs)
}

// Locals and VIPs list the maps' contents, sorted.
func (p *Program) Locals() ([]netip.Addr, error) { return list(p.locals) }
func (p *Program) VIPs() ([]netip.Addr, error)   { return list(p.vips) }

func key(a netip.Addr) decapAddr { return decapAddr{B: a.As16()} }

func setAll(m *ebpf.Map, addrs []netip.Addr) error {
	want := make(map[decapAddr]bool, len(addrs))
	for _, a := range addrs {
		k := key(a)
		want[k] = true
		if err := m.Update(k, uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("decap: map %s: add %s: %w", m, a, err)
		}
	}
	var k decapAddr
	var v uint8
	var stale []decapAddr
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("decap: map %s: %w", m, err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("decap: map %s: delete: %w", m, err)
		}
	}
	return nil
}

func list(m *ebpf.Map) ([]netip.Addr, error) {
	var out []netip.Addr
	var k decapAddr
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, netip.AddrFrom16(k.B).Unmap())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("decap: map %s: %w", m, err)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// Stats returns the counters, summed over CPUs, by name: decap_4in4 and
// the other decap_* count packets decapsulated, passed_* packets left to
// the kernel untouched and why, dropped_ecn outer-CE packets whose inner
// packet was not ECN capable.
func (p *Program) Stats() (map[string]uint64, error) {
	out := make(map[string]uint64, len(statNames))
	for i, name := range statNames {
		var per []uint64
		if err := p.stats.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("decap: stats: %w", err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// Attach attaches the program to the interface with index ifindex; it
// stays attached after the process exits, until Detach. It never replaces
// another program: an interface that has one is an error wrapping
// ErrNotOurs. Auto tries native, then generic; the mode used is returned.
func (p *Program) Attach(ifindex int, mode xdplink.Mode) (xdplink.Mode, error) {
	got, err := xdplink.Attach(ifindex, p.prog, mode, nil)
	if errors.Is(err, xdplink.ErrOtherProgram) {
		err = fmt.Errorf("%w: %w", err, ErrNotOurs)
	}
	if err != nil {
		return got, fmt.Errorf("decap: attach to interface %d (%s): %w", ifindex, mode, err)
	}
	return got, nil
}

// Close releases the process's handles; an attached program stays.
func (p *Program) Close() error {
	if p == nil {
		return nil
	}
	return errors.Join(p.prog.Close(), p.locals.Close(), p.vips.Close(), p.stats.Close())
}
