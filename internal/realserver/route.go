//go:build linux

package realserver

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The MSS a tunnelled real server advertises. The director adds an outer
// header to every packet from the client; a client that sends segments as
// large as the real server's interface allows would make packets the
// director cannot encapsulate within its MTU (it hands them to its own
// kernel, which breaks the connection). LVS-TUN's classic fix, done here:
// the routes the real server answers through carry an advmss that leaves
// room for the outer header, so the SYN-ACK tells the client to send
// smaller segments. The MSS is the route's (or interface's) MTU less the
// outer header (20 bytes, 40 when the interface has an IPv6 address the
// director might tunnel to) and the inner IP and TCP headers (40 for
// IPv4, 60 for IPv6).

// routeSteps lower the advmss of the main table's routes out of iface for
// the families of the VIPs.
func routeSteps(st *State) ([]step, error) {
	l, err := netlink.LinkByName(st.Interface)
	if err != nil {
		return nil, err
	}
	overhead := 20
	locals, err := localAddrs(st.Interface)
	if err != nil {
		return nil, err
	}
	for _, a := range locals {
		if a.Is6() {
			overhead = 40
		}
	}
	var steps []step
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		need := false
		for _, v := range st.VIPs {
			need = need || (v.Is4() == (fam == netlink.FAMILY_V4))
		}
		if !need {
			continue
		}
		rs, err := mainRoutes(fam, l.Attrs().Index)
		if err != nil {
			return nil, fmt.Errorf("routes of %s: %w", st.Interface, err)
		}
		for _, r := range rs {
			if r.Type != unix.RTN_UNICAST || r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() {
				continue
			}
			mtu := r.MTU
			if mtu == 0 {
				mtu = l.Attrs().MTU
			}
			ipTCP := 40
			if fam == netlink.FAMILY_V6 {
				ipTCP = 60
			}
			steps = append(steps, advmssStep(l.Attrs().Name, r, mtu-overhead-ipTCP))
		}
	}
	return steps, nil
}

// routeName is how `ip route` would show r's destination.
func routeName(r netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
			dst = r.Dst.String()
		}
	}
	if r.Gw != nil {
		dst += " via " + r.Gw.String()
	}
	if r.Priority != 0 {
		dst += " metric " + strconv.Itoa(r.Priority)
	}
	return dst
}

func advmssStep(iface string, r netlink.Route, want int) step {
	name := routeName(r)
	return step{
		what: fmt.Sprintf("route %s dev %s advmss %d or less", name, iface, want),
		holds: func() (bool, error) {
			cur, err := findRoute(r.Family, r.LinkIndex, name)
			if err != nil {
				return false, err
			}
			return cur.AdvMSS > 0 && cur.AdvMSS <= want, nil
		},
		apply: func() (Change, error) {
			cur, err := findRoute(r.Family, r.LinkIndex, name)
			if err != nil {
				return Change{}, err
			}
			old := cur.AdvMSS
			cur.AdvMSS = want
			if err := netlink.RouteChange(cur); err != nil {
				return Change{}, err
			}
			return Change{Kind: KindRoute, Interface: iface, Route: name, Old: strconv.Itoa(old), New: strconv.Itoa(want)}, nil
		},
	}
}

// mainRoutes lists the routes of family fam in the main table through
// the interface linkIndex.
func mainRoutes(fam, linkIndex int) ([]netlink.Route, error) {
	return netlink.RouteListFiltered(fam, &netlink.Route{LinkIndex: linkIndex, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
}

// findRoute finds the route of the main table of family fam through
// linkIndex named name (routeName: destination, gateway and metric).
func findRoute(fam, linkIndex int, name string) (*netlink.Route, error) {
	rs, err := mainRoutes(fam, linkIndex)
	if err != nil {
		return nil, err
	}
	for _, c := range rs {
		if routeName(c) == name {
			return &c, nil
		}
	}
	return nil, fmt.Errorf("route %s: %w", name, errNoRoute)
}

var errNoRoute = fmt.Errorf("no such route")

// undoRoute gives the route back its advmss, found by name on iface.
func undoRoute(c Change) (string, error) {
	l, err := netlink.LinkByName(c.Interface)
	if err != nil {
		return "", err
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		r, err := findRoute(fam, l.Attrs().Index, c.Route)
		if errors.Is(err, errNoRoute) {
			continue
		}
		if err != nil {
			return "", err
		}
		if strconv.Itoa(r.AdvMSS) != c.New {
			return fmt.Sprintf("left: route %s dev %s has advmss %d, not the %s up set: changed since by someone else", c.Route, c.Interface, r.AdvMSS, c.New), nil
		}
		r.AdvMSS, _ = strconv.Atoi(c.Old)
		if err := netlink.RouteChange(r); err != nil {
			return "", err
		}
		return fmt.Sprintf("route %s dev %s: advmss %s -> %s", c.Route, c.Interface, c.New, c.Old), nil
	}
	return fmt.Sprintf("route %s dev %s already gone", c.Route, c.Interface), nil
}
