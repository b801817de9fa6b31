//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/fulcrum-lb/fulcrum/internal/setns"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
	"golang.org/x/sys/unix"
)

// AttachMode is how the program is hooked into an interface.
type AttachMode = xdplink.Mode

// The attach modes.
const (
	AttachAuto    = xdplink.Auto    // native, else generic
	AttachNative  = xdplink.Native  // in the driver
	AttachGeneric = xdplink.Generic // after the kernel built an skb
)

// Attach hooks the program into ifname and records the interface's MAC
// address (frames to other MACs go to the kernel). It returns the mode it
// got, native or generic.
//
// The program is attached over netlink (package xdplink says why), so it
// outlives the process: a killed fulcrum's program keeps forwarding with
// its last tables until the backup director takes the VIP. Attach
// replaces such a leftover fulcrum program (by name), never another
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
		_ = p.clearIfMAC(ifc.Index)
		return 0, fmt.Errorf("xdp: attach %s: %w", ifname, err)
	}
	got, err := xdplink.Attach(ifc.Index, p.objs.FulcrumXdp, mode, func(id ebpf.ProgramID) bool {
		return xdplink.ProgramName(id) == bpfProgFulcrumXdp
	})
	if err != nil {
		unix.Close(nsFD)
		_ = p.clearIfMAC(ifc.Index)
		return 0, fmt.Errorf("xdp: attach %s (%s): %w", ifname, mode, err)
	}
	p.links[ifname] = &attachment{ifindex: ifc.Index, mode: got, nsFD: nsFD}
	return got, nil
}

// detach removes the program from a's interface, if it is still this
// program there (an interface gone took it with it), from the namespace
// it was attached in.
func (p *Program) detach(a *attachment) error {
	defer unix.Close(a.nsFD)
	return setns.Do(a.nsFD, func() error { return p.detachHere(a) })
}

// detachHere removes the program from a's interface in this namespace,
// unless another program replaced it since.
func (p *Program) detachHere(a *attachment) error {
	id, err := xdplink.ProgramID(p.objs.FulcrumXdp)
	if err != nil {
		return err
	}
	if err := xdplink.Detach(a.ifindex, id); err != nil && !errors.Is(err, xdplink.ErrOtherProgram) {
		return err
	}
	return nil
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
	_ = p.clearIfMAC(a.ifindex)
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

// ifmacArray is IFMAC_ARRAY of bpf/xdp.h: interfaces with a smaller index
// have their MAC in the ifmacs array, the others in the ifmacs_big hash.
const ifmacArray = 4096

// setIfMAC tells the program the MAC of an interface it is attached to:
// frames to another MAC are the kernel's.
func (p *Program) setIfMAC(ifindex int, mac net.HardwareAddr) error {
	v := bpfIfmac{Set: 1}
	copy(v.Mac[:], mac)
	if ifindex < ifmacArray {
		return p.objs.Ifmacs.Put(uint32(ifindex), v)
	}
	return p.objs.IfmacsBig.Put(uint32(ifindex), v)
}

// clearIfMAC forgets ifindex's MAC: every frame arriving there goes to the
// kernel.
func (p *Program) clearIfMAC(ifindex int) error {
	if ifindex < ifmacArray {
		return p.objs.Ifmacs.Put(uint32(ifindex), bpfIfmac{})
	}
	return p.objs.IfmacsBig.Delete(uint32(ifindex))
}
