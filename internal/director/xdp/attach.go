//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf/link"
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
	try := func(m AttachMode) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == AttachGeneric {
			flags = link.XDPGenericMode
		}
		return link.AttachXDP(link.XDPOptions{Program: p.objs.FulcrumXdp, Interface: ifc.Index, Flags: flags})
	}
	var l link.Link
	got := mode
	switch mode {
	case AttachNative, AttachGeneric:
		l, err = try(mode)
	case AttachAuto:
		got = AttachNative
		l, err = try(AttachNative)
		if err != nil {
			nerr := err
			got = AttachGeneric
			if l, err = try(AttachGeneric); err != nil {
				err = errors.Join(fmt.Errorf("native: %w", nerr), fmt.Errorf("generic: %w", err))
			}
		}
	default:
		err = fmt.Errorf("unknown mode %s", mode)
	}
	if err != nil {
		_ = p.objs.Ifmacs.Delete(uint32(ifc.Index))
		return 0, fmt.Errorf("xdp: attach %s (%s): %w", ifname, mode, err)
	}
	p.links[ifname] = &attachment{link: l, ifindex: ifc.Index, mode: got}
	return got, nil
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
	if err := a.link.Close(); err != nil {
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
