package daemon

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// withDefaults fills the fields a caller left nil with the real,
// privileged implementations.
func (h HADeps) withDefaults() HADeps {
	if h.Listen == nil {
		h.Listen = vrrp.Listen
	}
	if h.PrimaryAddr == nil {
		h.PrimaryAddr = vrrp.PrimaryAddr
	}
	if h.Announcer == nil {
		h.Announcer = func(*config.HAGroup, *slog.Logger) (vrrp.Announcer, error) {
			return nil, errors.New("no announcer")
		}
	}
	if h.LinkUp == nil {
		h.LinkUp = func(string) (bool, error) { return false, errors.New("no link state") }
	}
	_ = netip.Addr{}
	return h
}
