//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/fulcrum-lb/fulcrum/internal/setns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// AttachMode is how the program is hooked into an interface.
type AttachMode uint8

const (
	// AttachAuto tries native, then generic.
	AttachAuto AttachMode = iota
	// AttachNative runs the program in the driver (XDP_FLAGS_DRV_MODE).
	AttachNative
	// AttachGeneric runs it after the kernel built an skb
	// (XDP_FLAGS_SKB_MODE): every driver has it, at a fraction of the speed.
	AttachGeneric
)

func (m AttachMode) String() string {
	switch m {
	case AttachAuto:
		return "auto"
	case AttachNative:
		return "native"
	case AttachGeneric:
		return "generic"
	}
	return fmt.Sprintf("AttachMode(%d)", uint8(m))
}

// Attach hooks the program into ifname and records the interface's MAC
// address (frames to other MACs go to the kernel). It returns the mode it
// got, native or generic.
//
// The program is attached over netlink, not with a bpf_link: the
// attachment belongs to the interface and outlives the process. A fulcrum
// that is killed (kill -9, a crash) leaves its program forwarding with its
// last tables, as IPVS keeps forwarding when ipvsadm's caller dies, until
// the backup director takes the VIP; with a bpf_link the program would go
// with the process while the VIP stays on the interface, and the dead
// node's TCP stack would reset every flow that reaches it meanwhile.
// Attach replaces such a leftover fulcrum program (by name), never another
// program; Detach and Close remove the program explicitly.
func (p *Program) Attach(ifname string, mode AttachMode) (AttachMode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.links[ifname]; ok {
		return 0, fmt.Errorf("xdp: attach %s: already attached", ifname)
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("xdp: attach: %w", err)
	}
	if len(ifc.HardwareAddr) != 6 {
		return 0, fmt.Errorf("xdp: attach %s: not an Ethernet interface", ifname)
	}
	if err := p.setIfMAC(ifc.Index, ifc.HardwareAddr); err != nil {
		return 0, fmt.Errorf("xdp: attach %s: %w", ifname, err)
	}
	// Detach may run on another thread (Close from the test's or the
	// daemon's goroutine): it goes back to this namespace.
	nsFD, err := setns.Current()
	if err != nil {
		_ = p.objs.Ifmacs.Delete(uint32(ifc.Index))
		return 0, fmt.Errorf("xdp: attach %s: %w", ifname, err)
	}
	got := mode
	switch mode {
	case AttachNative, AttachGeneric:
		err = p.attachNetlink(ifc.Index, mode)
	case AttachAuto:
		got = AttachNative
		if err = p.attachNetlink(ifc.Index, AttachNative); err != nil {
			nerr := err
			got = AttachGeneric
			if err = p.attachNetlink(ifc.Index, AttachGeneric); err != nil {
				err = errors.Join(fmt.Errorf("native: %w", nerr), fmt.Errorf("generic: %w", err))
			}
		}
	default:
		err = fmt.Errorf("unknown mode %s", mode)
	}
	if err != nil {
		unix.Close(nsFD)
		_ = p.objs.Ifmacs.Delete(uint32(ifc.Index))
		return 0, fmt.Errorf("xdp: attach %s (%s): %w", ifname, mode, err)
	}
	p.links[ifname] = &attachment{ifindex: ifc.Index, mode: got, nsFD: nsFD}
	return got, nil
}

// modeFlag is the netlink flag of an attach mode.
func modeFlag(m AttachMode) int {
	if m == AttachGeneric {
		return nl.XDP_FLAGS_SKB_MODE
	}
	return nl.XDP_FLAGS_DRV_MODE
}

// attachNetlink attaches the program to ifindex in mode m, replacing a
// fulcrum program left there by a process that died (in either mode) but
// no other program.
func (p *Program) attachNetlink(ifindex int, m AttachMode) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached && x.ProgId != 0 {
		name := programName(x.ProgId)
		if name != bpfProgFulcrumXdp {
			return fmt.Errorf("another XDP program is attached (id %d, name %q); fulcrum does not replace it", x.ProgId, name)
		}
		// The kernel keeps one mode per interface: a leftover in the
		// other mode goes first.
		if left := attachedMode(x.AttachMode); left != m {
			if err := netlink.LinkSetXdpFdWithFlags(l, -1, modeFlag(left)); err != nil {
				return fmt.Errorf("removing the fulcrum program (id %d) left in %s mode: %w", x.ProgId, left, err)
			}
		}
	}
	return netlink.LinkSetXdpFdWithFlags(l, p.objs.FulcrumXdp.FD(), modeFlag(m))
}

// attachedMode maps the kernel's XDP_ATTACHED_* to an AttachMode.
func attachedMode(a uint32) AttachMode {
	if a == nl.XDP_ATTACHED_SKB {
		return AttachGeneric
	}
	return AttachNative
}

// programName is the name of the loaded BPF program id, "" if it cannot
// be read.
func programName(id uint32) string {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return ""
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return ""
	}
	return info.Name
}

// detach removes the program from a's interface, if it is still this
// program there (an interface gone took it with it), from the namespace
// it was attached in.
func (p *Program) detach(a *attachment) error {
	defer unix.Close(a.nsFD)
	return setns.Do(a.nsFD, func() error { return p.detachHere(a) })
}

func (p *Program) detachHere(a *attachment) error {
	l, err := netlink.LinkByIndex(a.ifindex)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	if info, err := p.objs.FulcrumXdp.Info(); err == nil {
		if id, ok := info.ID(); ok && uint32(id) != x.ProgId {
			return nil // replaced since: not ours to remove
		}
	}
	return netlink.LinkSetXdpFdWithFlags(l, -1, modeFlag(a.mode))
}

// Detach unhooks the program from ifname.
func (p *Program) Detach(ifname string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.links[ifname]
	if !ok {
		return fmt.Errorf("xdp: detach %s: not attached", ifname)
	}
	delete(p.links, ifname)
	_ = p.objs.Ifmacs.Delete(uint32(a.ifindex))
	if err := p.detach(a); err != nil {
		return fmt.Errorf("xdp: detach %s: %w", ifname, err)
	}
	return nil
}

// Attached returns the interfaces the program is attached to and how.
func (p *Program) Attached() map[string]AttachMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]AttachMode, len(p.links))
	for name, a := range p.links {
		m[name] = a.mode
	}
	return m
}

func (p *Program) setIfMAC(ifindex int, mac net.HardwareAddr) error {
	var v bpfIfmac
	copy(v.Mac[:], mac)
	return p.objs.Ifmacs.Put(uint32(ifindex), v)
}
