package netif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds one netlink round trip. The kernel answers in
// microseconds; the bound is there because the caller is the VRRP state
// machine, which must never wait for ever.
const netlinkTimeout = time.Second

// linuxSystem changes addresses over rtnetlink and sends whole Ethernet
// frames on an AF_PACKET socket, the way keepalived does, so that the
// announcements need no address on the interface to be usable (an IPv6
// raw socket would want a link-local source) and cost no dependency.
type linuxSystem struct {
	nl     *netlink.Handle
	fd     int
	router bool
}

func newSystem(ifname string) (system, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	// Protocol 0: the socket only sends, so nothing queues up on it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return &linuxSystem{nl: h, fd: fd, router: ipv6Forwarding(ifname)}, nil
}

// ipv6Forwarding is read once, here, because /proc/sys/net shows the
// network namespace of the thread that reads it, and only New is known to
// run in the right one. Forwarding is set at boot, not switched at run time.
func ipv6Forwarding(ifname string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifname + "/forwarding")
	return err == nil && strings.TrimSpace(string(b)) != "0"
}

func (s *linuxSystem) link(name string) (linkInfo, error) {
	l, err := s.nl.LinkByName(name)
	if err != nil {
		return linkInfo{}, linkError(name, err)
	}
	at := l.Attrs()
	return linkInfo{
		name:     at.Name,
		index:    at.Index,
		mac:      at.HardwareAddr,
		announce: len(at.HardwareAddr) == 6 && at.EncapType == "ether" && at.RawFlags&unix.IFF_NOARP == 0,
		router:   s.router,
	}, nil
}

func linkError(name string, err error) error {
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return fmt.Errorf("interface %s: %w", name, ErrNoInterface)
	}
	return fmt.Errorf("interface %s: %w", name, err)
}

func (s *linuxSystem) addAddr(l linkInfo, p netip.Prefix, label string) (bool, error) {
	a := nlAddr(p)
	a.Label = label
	if p.Addr().Is6() {
		// Duplicate address detection would keep the address tentative,
		// unusable for binding and sending, for a second or more; the
		// VRRP election already ensures that one node holds it.
		a.Flags = unix.IFA_F_NODAD
	}
	err := s.nl.AddrAdd(device(l), a)
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	return err == nil, err
}

func (s *linuxSystem) delAddr(l linkInfo, p netip.Prefix) (bool, error) {
	// No label: an address of ours is removed whoever added it (a
	// previous run, keepalived, an operator).
	err := s.nl.AddrDel(device(l), nlAddr(p))
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return false, nil
	}
	return err == nil, err
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := p.Addr()
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}}
}

func device(l linkInfo) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.index, Name: l.name}}
}

func (s *linuxSystem) send(l linkInfo, frame []byte) error {
	to := &unix.SockaddrLinklayer{
		// In network byte order, as the frame has it.
		Protocol: binary.NativeEndian.Uint16(frame[12:14]),
		Ifindex:  l.index,
		Halen:    6,
	}
	copy(to.Addr[:], frame[0:6])
	// MSG_DONTWAIT: a full device queue costs one announcement, not the
	// caller's time.
	return unix.Sendto(s.fd, frame, unix.MSG_DONTWAIT, to)
}

func (s *linuxSystem) close() error {
	s.nl.Close()
	return unix.Close(s.fd)
}

// LinkUp reports whether an interface is administratively up and
// operationally running: carrier present, or a link that reports no
// operational state (a dummy or tun device). HA tracking faults a group
// whose interface is not. It looks in the calling thread's network
// namespace; an interface that does not exist is an error wrapping
// ErrNoInterface.
func LinkUp(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, fmt.Errorf("netif: %w", linkError(name, err))
	}
	f := l.Attrs().RawFlags
	return f&unix.IFF_UP != 0 && f&unix.IFF_RUNNING != 0, nil
}
