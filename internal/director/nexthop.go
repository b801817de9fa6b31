package director

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hop is how the director reaches a backend: out of which interface, to
// which next hop's MAC.
type hop struct {
	ifIndex int
	ifName  string
	srcMAC  net.HardwareAddr // the egress interface's
	dstMAC  net.HardwareAddr // the next hop's: the backend's own when on-link
	gateway netip.Addr       // the router toward the backend; invalid when on-link
	src     netip.Addr       // the egress address of the backend's family
	mtu     int              // IP MTU toward the backend: the interface's, or the route's when lower; 0 unknown
}

// errUnresolved: the next hop's MAC is not in the neighbour table yet.
// Resolution has been started; asking again later may succeed.
var errUnresolved = errors.New("next hop not resolved yet")

// resolver finds the hop to a backend. It is called with Director.mu
// held, so one call at a time; it must not block for long (no waiting
// for an ARP reply: it returns errUnresolved and is asked again).
type resolver interface {
	resolve(addr netip.Addr) (hop, error)
}

// netlinkResolver reads the kernel's routing and neighbour tables of the
// network namespace of h, and provokes resolutions through dial (in the
// same namespace).
type netlinkResolver struct {
	h    *netlink.Handle
	dial func(network, address string) (net.Conn, error)
}

var _ resolver = netlinkResolver{}

// hostResolver reads the namespace the daemon runs in.
func hostResolver() netlinkResolver {
	return netlinkResolver{h: &netlink.Handle{}, dial: net.Dial}
}

// discardPort is where a datagram that makes the kernel resolve a next
// hop is sent: the discard service, which a host either ignores or
// answers with an ICMP port unreachable.
const discardPort = 9

func (res netlinkResolver) resolve(addr netip.Addr) (hop, error) {
	routes, err := res.h.RouteGet(addr.AsSlice())
	if err != nil {
		return hop{}, fmt.Errorf("route to %s: %w", addr, err)
	}
	if len(routes) == 0 {
		return hop{}, fmt.Errorf("route to %s: none", addr)
	}
	r := routes[0]
	if r.Type == unix.RTN_LOCAL {
		return hop{}, fmt.Errorf("%s is an address of this host", addr)
	}
	link, err := res.h.LinkByIndex(r.LinkIndex)
	if err != nil {
		return hop{}, fmt.Errorf("route to %s: interface %d: %w", addr, r.LinkIndex, err)
	}
	attrs := link.Attrs()
	h := hop{ifIndex: attrs.Index, ifName: attrs.Name, srcMAC: attrs.HardwareAddr, mtu: hopMTU(attrs.MTU, r.MTU)}
	if len(h.srcMAC) != 6 {
		return hop{}, fmt.Errorf("route to %s leaves by %s, which has no Ethernet address", addr, attrs.Name)
	}
	next := addr
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
		h.gateway = gw.Unmap()
		next = h.gateway
	}
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	if src, ok := netip.AddrFromSlice(r.Src); ok && r.Src != nil && src.Unmap().Is4() == addr.Is4() {
		h.src = src.Unmap()
	} else if as, err := res.h.AddrList(link, family); err == nil {
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsGlobalUnicast() {
				h.src = ip.Unmap()
				break
			}
		}
	}
	neighs, err := res.h.NeighList(attrs.Index, family)
	if err != nil {
		return hop{}, fmt.Errorf("neighbours of %s: %w", attrs.Name, err)
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != next || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 || n.State == netlink.NUD_NONE {
			continue
		}
		h.dstMAC = n.HardwareAddr
		return h, nil
	}
	res.provoke(next, attrs.Name)
	return hop{}, fmt.Errorf("%w: no neighbour entry for %s on %s", errUnresolved, next, attrs.Name)
}

// hopMTU is the IP MTU toward a backend from the egress interface's and
// the route's (0: none), as xdp.Real.MTU takes it: 0, ask the kernel per
// packet, when it does not fit the program's 16 bits (lo's 65536).
func hopMTU(link, route int) int {
	mtu := link
	if route > 0 && route < mtu {
		mtu = route
	}
	if mtu <= 0 || mtu > 65535 {
		return 0
	}
	return mtu
}

// provoke makes the kernel resolve next's MAC by sending it a one-byte UDP
// datagram on the discard port: the ordinary output path queues the
// datagram and sends the ARP request or neighbour solicitation, with the
// kernel's own retries, for IPv4 and IPv6 alike, to a gateway as well as
// to an on-link backend. Errors are ignored: the caller looks at the
// neighbour table again later either way.
func (res netlinkResolver) provoke(next netip.Addr, ifName string) {
	a := next.String()
	if next.Is6() && next.IsLinkLocalUnicast() {
		a += "%" + ifName
	}
	c, err := res.dial("udp", net.JoinHostPort(a, strconv.Itoa(discardPort)))
	if err != nil {
		return
	}
	c.Write([]byte{0})
	c.Close()
}
