package daemon

import (
	"log/slog"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
	"github.com/fulcrum-lb/fulcrum/internal/netif"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// withDefaults fills the fields a caller left nil with the real,
// privileged implementations.
func (h HADeps) withDefaults() HADeps {
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
