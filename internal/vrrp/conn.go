package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Conn sends and receives adverts for one virtual router. Implementations:
// the raw IP protocol 112 socket from Listen, and fakes in tests.
//
// An Instance calls Send and Receive from its Run goroutine only; Close
// may be called from any goroutine, once.
type Conn interface {
	// Send sends a to the multicast group, or to each unicast peer.
	Send(a Advert) error
	// Receive delivers every VRRP packet that arrives, parsed and
	// validated, with Err set for those that failed; the channel is closed
	// when the Conn is closed or can no longer read.
	Receive() <-chan Packet
	Close() error
}

// Packet is one received advert, or the reason one was dropped.
type Packet struct {
	Advert Advert
	Src    netip.Addr
	TTL    int // TTL or hop limit; RFC 9568 requires 255 (one link only)
	// Err is why the packet is not a valid advert (wrapping one of the
	// package's sentinel errors); Advert is then zero.
	Err error
	// ConfigHash is the hex of the config hash prefix an authenticated
	// advert carried; "" when none.
	ConfigHash string
}

// ConfigHasher is a Conn whose adverts can carry the sender's config
// hash to its peers (the authenticated ones). SetConfigHash may be called
// from any goroutine, at any time.
type ConfigHasher interface {
	SetConfigHash(h []byte)
}

// Announcer takes and gives up the virtual addresses. The netif package
// implements it (netlink, gratuitous ARP, unsolicited NA); tests use fakes.
//
// An Instance calls it from its Run goroutine only, and waits: a slow
// Announcer delays adverts, so each call should finish in well under one
// advert interval or be bounded by ctx.
type Announcer interface {
	// Acquire adds the addresses and announces them (gratuitous ARP, NA).
	Acquire(ctx context.Context, vips []netip.Addr) error
	// Release removes the addresses.
	Release(ctx context.Context, vips []netip.Addr) error
	// Announce re-sends gratuitous ARP/NA for addresses already held: the
	// winner of a split brain corrects the neighbours' caches with it.
	Announce(ctx context.Context, vips []netip.Addr) error
}

// A HandoverAnnouncer can keep a previous master's connections alive
// across a planned hand-over: when we take the addresses from a master
// that is still up (it released them or shut down, or we preempted it), it
// goes on serving the connections it has on them for a while, and we pass
// it their packets, which the neighbours now send to us.
type HandoverAnnouncer interface {
	Announcer
	// AcquireFrom is Acquire when the previous master, prev (the address
	// its adverts came from), is alive.
	AcquireFrom(ctx context.Context, vips []netip.Addr, prev netip.Addr) error
	// ReleaseTo is Release when next, a live master, has taken over: the
	// addresses may stay a while longer for the connections on them. At
	// shutdown next may be the zero Addr: no successor was heard in time,
	// but one may still take over.
	ReleaseTo(ctx context.Context, vips []netip.Addr, next netip.Addr) error
}

// Family is an address family for a Conn.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// ConnOptions configures Listen.
type ConnOptions struct {
	Interface string
	Family    Family
	// Source is the address adverts are sent from, and so our primary
	// address for the election's tie-break; it must be on Interface. The
	// zero value picks PrimaryAddr(Interface, Family).
	Source netip.Addr
	// Peers, if any, switch to unicast: adverts go to each peer instead
	// of the multicast group, and only peers' packets are received.
	Peers []netip.Addr
	// AuthKey, if set, authenticates adverts (see Authenticator); every
	// node must use the same key, and plain VRRP peers can no longer take
	// part.
	AuthKey []byte
}

// ErrNotPeer marks a packet from an address that is not a configured
// unicast peer.
var ErrNotPeer = errors.New("source is not a unicast peer")

// PrimaryAddr is the address an interface sends adverts from, as RFC 9568
// section 5.1 asks: for IPv4 its first (primary) IPv4 address, for IPv6 its
// link-local address. It is also the address Config.LocalAddr wants.
func PrimaryAddr(ifname string, f Family) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: interface %s: %w", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifname, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		switch {
		case f == IPv4 && ip.Is4():
			return ip, nil
		case f == IPv6 && ip.Is6() && ip.IsLinkLocalUnicast():
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no %s address to send adverts from", ifname, f)
}
