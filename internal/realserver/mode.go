// Package realserver sets up a host as a real server (a backend) of a
// director that forwards by direct routing or tunnelling: the VIPs on the
// loopback interface, where the host accepts packets to them without
// answering ARP for them, the arp_ignore/arp_announce settings that keep
// it quiet about them, and, for tunnelling, decapsulation of the
// director's IP-in-IP packets, by the kernel's tunl0 where the kernel has
// the ipip module, else by fulcrum's XDP decapsulator (package decap).
//
// Up records every change it makes in a state file; Down undoes exactly
// those; Check reports what no longer holds. It is `fulcrum realserver`.
package realserver

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// ParseMode reads the director's forwarding this host serves, in the
// spellings of the config's forwarding key (config.ParseForwarding):
// direct (gate, dr, droute) or tunnel (ipip, tun).
func ParseMode(s string) (xdp.Mode, error) {
	f, err := config.ParseForwarding(s)
	switch {
	case errors.Is(err, config.ErrNAT):
		return 0, fmt.Errorf("mode %q: %w: use forwarding: proxy, which needs nothing on the real server", s, err)
	case f == config.ForwardDirect:
		return xdp.ModeDirect, nil
	case f == config.ForwardTunnel:
		return xdp.ModeTunnel, nil
	}
	return 0, fmt.Errorf("mode %q: want direct (gate, dr, droute) or tunnel (ipip, tun)", s)
}

// Decap is who takes the tunnel header off in tunnel mode.
type Decap uint8

const (
	DecapAuto   Decap = iota // kernel if it has the ipip module, else ebpf
	DecapKernel              // the kernel's fallback tunnels tunl0 (and sit0, ip6tnl0)
	DecapEBPF                // fulcrum's XDP program
)

func (d Decap) String() string {
	switch d {
	case DecapKernel:
		return "kernel"
	case DecapEBPF:
		return "ebpf"
	}
	return "auto"
}

// ParseDecap reads auto, kernel or ebpf (xdp).
func ParseDecap(s string) (Decap, error) {
	switch s {
	case "auto", "":
		return DecapAuto, nil
	case "kernel":
		return DecapKernel, nil
	case "ebpf", "xdp":
		return DecapEBPF, nil
	}
	return DecapAuto, fmt.Errorf("decap %q: want auto, kernel or ebpf", s)
}

// Options says what Up sets up.
type Options struct {
	Mode xdp.Mode // ModeDirect or ModeTunnel
	VIPs []netip.Addr
	// Interface faces the director: it gets its own arp_* settings, and
	// in tunnel mode the decapsulator (or loose rp_filter). "" means the
	// interface of the default route.
	Interface string
	Decap     Decap
	XDPMode   xdplink.Mode
	// StatePath is the state file; "" means DefaultStatePath (or the
	// network namespace's own, see there).
	StatePath string
}
