//go:build linux

package realserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// Down undoes the changes recorded in the state file at path, newest
// first, printing each to w, and removes the file. A sysctl someone has
// changed since Up is left as it is (and said so); an address or program
// already gone is not an error. Changes it fails to undo stay in the
// file, for another try.
func Down(path string, w io.Writer) error {
	path = orDefault(path)
	unlock, err := lockState(path)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := LoadState(path)
	if errors.Is(err, ErrStaleState) {
		fmt.Fprintf(w, "nothing to undo: %v; removed\n", err)
		return os.Remove(path)
	}
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintf(w, "nothing to undo: no state file %s\n", path)
		return nil
	}
	var kept []Change
	var errs []error
	for i := len(st.Changes) - 1; i >= 0; i-- {
		c := st.Changes[i]
		if err := undo(c, w); err != nil {
			errs = append(errs, fmt.Errorf("realserver: undo %s: %w", c, err))
			kept = append([]Change{c}, kept...)
		}
	}
	if len(kept) > 0 {
		st.Changes = kept
		return errors.Join(append(errs, st.save(path))...)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("realserver: state: %w", err)
	}
	return nil
}

func undo(c Change, w io.Writer) error {
	switch c.Kind {
	case KindSysctl:
		cur, err := readSysctl(c.Path)
		if err != nil {
			return err
		}
		if cur != c.New {
			fmt.Fprintf(w, "left: sysctl %s is %s, not the %s up set: changed since by someone else\n", sysctlName(c.Path), cur, c.New)
			return nil
		}
		if err := writeSysctl(c.Path, c.Old); err != nil {
			return err
		}
		fmt.Fprintf(w, "sysctl %s: %s -> %s\n", sysctlName(c.Path), c.New, c.Old)
	case KindAddress:
		l, err := netlink.LinkByName(c.Interface)
		if err != nil {
			return err
		}
		p := c.Prefix
		err = netlink.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			fmt.Fprintf(w, "address %s already gone from %s\n", p, c.Interface)
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "address %s removed from %s\n", p, c.Interface)
	case KindXDP:
		l, err := netlink.LinkByName(c.Interface)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			fmt.Fprintf(w, "interface %s gone, and its xdp program with it\n", c.Interface)
			return nil
		}
		if err != nil {
			return err
		}
		if err := xdplink.Detach(l.Attrs().Index, ebpf.ProgramID(c.ProgramID)); err != nil {
			return fmt.Errorf("xdp decapsulator: %w", err)
		}
		fmt.Fprintf(w, "xdp decapsulator (program id %d) detached from %s\n", c.ProgramID, c.Interface)
	case KindLinkUp:
		l, err := netlink.LinkByName(c.Interface)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return err
		}
		fmt.Fprintf(w, "link %s set down\n", c.Interface)
	case KindRoute:
		msg, err := undoRoute(c)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, msg)
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}
