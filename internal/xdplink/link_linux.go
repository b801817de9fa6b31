//go:build linux

package xdplink

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// ErrOtherProgram is wrapped by the errors about an interface that has an
// XDP program other than the one meant.
var ErrOtherProgram = errors.New("another XDP program is attached")

// Attach attaches the XDP program prog to the interface with index
// ifindex in mode m and returns the mode it got: Auto tries native, then
// generic.
//
// A program already on the interface is replaced only if replace says so
// of its id (nil: never), in either mode: the kernel keeps one mode per
// interface, so one left in the other mode is removed first. Otherwise
// the error wraps ErrOtherProgram and names it.
func Attach(ifindex int, prog *ebpf.Program, m Mode, replace func(ebpf.ProgramID) bool) (Mode, error) {
	id, _, err := Attached(ifindex)
	if err != nil {
		return m, err
	}
	if id != 0 && (replace == nil || !replace(id)) {
		return m, fmt.Errorf("%w (id %d, name %q); fulcrum does not replace it", ErrOtherProgram, id, ProgramName(id))
	}
	switch m {
	case Native, Generic:
		return m, attach(ifindex, prog, m, replace != nil)
	case Auto:
		nerr := attach(ifindex, prog, Native, replace != nil)
		if nerr == nil {
			return Native, nil
		}
		if gerr := attach(ifindex, prog, Generic, replace != nil); gerr != nil {
			return m, errors.Join(fmt.Errorf("native: %w", nerr), fmt.Errorf("generic: %w", gerr))
		}
		return Generic, nil
	}
	return m, fmt.Errorf("unknown mode %s", m)
}

// attach sets prog on ifindex in mode m (Native or Generic), first
// removing a program left there in the other mode, which Attach allowed.
// Without mayReplace it attaches only to an interface with no program
// (XDP_FLAGS_UPDATE_IF_NOEXIST: one attached since Attach looked stays).
func attach(ifindex int, prog *ebpf.Program, m Mode, mayReplace bool) error {
	l, err := link(ifindex)
	if err != nil {
		return err
	}
	flags := modeFlag(m)
	if !mayReplace {
		flags |= nl.XDP_FLAGS_UPDATE_IF_NOEXIST
	} else if id, left := attached(l); id != 0 && left != m {
		if err := netlink.LinkSetXdpFdWithFlags(l, -1, modeFlag(left)); err != nil {
			return fmt.Errorf("removing program %d left in %s mode: %w", id, left, err)
		}
	}
	return netlink.LinkSetXdpFdWithFlags(l, prog.FD(), flags)
}

// Attached reports the XDP program attached to the interface with index
// ifindex, 0 for none, and its mode: Native, Generic, or Auto for another
// (offloaded, or several).
func Attached(ifindex int) (ebpf.ProgramID, Mode, error) {
	l, err := link(ifindex)
	if err != nil {
		return 0, Auto, err
	}
	id, m := attached(l)
	return id, m, nil
}

func attached(l netlink.Link) (ebpf.ProgramID, Mode) {
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return 0, Auto
	}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return ebpf.ProgramID(x.ProgId), Native
	case nl.XDP_ATTACHED_SKB:
		return ebpf.ProgramID(x.ProgId), Generic
	}
	return ebpf.ProgramID(x.ProgId), Auto
}

// Detach removes the program with id from the interface with index
// ifindex. An interface with no program, or that is gone, is not an
// error; one with another program keeps it, and the error wraps
// ErrOtherProgram.
func Detach(ifindex int, id ebpf.ProgramID) error {
	l, err := link(ifindex)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return err
	}
	got, m := attached(l)
	if got == 0 {
		return nil
	}
	if got != id {
		return fmt.Errorf("%s has xdp program %d, not %d: %w", l.Attrs().Name, got, id, ErrOtherProgram)
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, -1, modeFlag(m)); err != nil {
		return fmt.Errorf("detach from %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// ProgramID is the kernel's id of prog.
func ProgramID(prog *ebpf.Program) (ebpf.ProgramID, error) {
	info, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("the kernel gives no program id")
	}
	return id, nil
}

// ProgramName is the name of the loaded program id, "" if it cannot be
// read.
func ProgramName(id ebpf.ProgramID) string {
	prog, err := ebpf.NewProgramFromID(id)
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

func link(ifindex int) (netlink.Link, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("interface %d: %w", ifindex, err)
	}
	return l, nil
}

// modeFlag is the netlink flag of m; Auto's 0 lets the kernel choose
// (native where the driver has it).
func modeFlag(m Mode) int {
	switch m {
	case Native:
		return nl.XDP_FLAGS_DRV_MODE
	case Generic:
		return nl.XDP_FLAGS_SKB_MODE
	}
	return 0
}
