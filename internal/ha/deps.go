package ha

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
	"github.com/fulcrum-lb/fulcrum/internal/netif"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// Deps are the privileged pieces an HA group needs; tests replace them
// with fakes.
type Deps struct {
	// HelloListen opens the hello socket of one family on port (see
	// package hello); nil turns the hello off. It defaults to the real
	// one only together with the real Listen, so that a test's fake
	// groups send nothing on the machine's network.
	HelloListen func(is6 bool, port int) (net.PacketConn, error)
	// Listen opens the VRRP socket.
	Listen func(vrrp.ConnOptions) (vrrp.Conn, error)
	// Announcer builds what adds the VIPs and sends gratuitous ARP/NA.
	Announcer func(g *config.HAGroup, log *slog.Logger) (vrrp.Announcer, error)
	// PrimaryAddr is our address on the interface, the election's
	// tie-break.
	PrimaryAddr func(ifname string, f vrrp.Family) (netip.Addr, error)
	// LinkUp reports whether a tracked interface is up.
	LinkUp func(ifname string) (bool, error)
	// Handover builds a group's hand-over rules (relay and quiet); nil
	// with a fake Announcer means none: connections in flight at a
	// hand-over are then reset, as without nftables.
	Handover func(g *config.HAGroup) Handover
}

// withDefaults fills the fields a caller left nil with the real,
// privileged implementations.
func (h Deps) withDefaults() Deps {
	if h.Listen == nil {
		h.Listen = vrrp.Listen
		if h.HelloListen == nil {
			h.HelloListen = hello.Listen
		}
	}
	if h.PrimaryAddr == nil {
		h.PrimaryAddr = vrrp.PrimaryAddr
	}
	if h.Announcer == nil {
		h.Announcer = netifAnnouncer
		// Only with the real announcer: a test's fake addresses must not
		// become nft rules on the machine.
		if h.Handover == nil {
			h.Handover = func(g *config.HAGroup) Handover { return netif.NewHandover(g.Interface, uint8(g.VRID)) }
		}
	}
	if h.LinkUp == nil {
		h.LinkUp = netif.LinkUp
	}
	return h
}

func netifAnnouncer(g *config.HAGroup, log *slog.Logger) (vrrp.Announcer, error) {
	return netif.New(netif.Options{
		Interface:      g.Interface,
		Prefixes:       g.VIPPrefixes(),
		Repeat:         g.GARP.Repeat,
		RepeatInterval: g.GARP.Interval.D(),
		Refresh:        g.GARP.Refresh.D(),
		Log:            log,
	})
}
