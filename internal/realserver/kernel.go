//go:build linux

package realserver

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"

	"github.com/vishvananda/netlink"
)

// A kernel tunnel module and the fallback device it makes in every
// network namespace, which takes every tunnelled packet to a local
// address of its kind that no configured tunnel claims.
type kernelTunnel struct{ module, device string }

// kernelDecap loads the ipip module, or says why it cannot.
func kernelDecap() error { return modprobe("ipip") }

func modprobe(module string) error {
	if _, err := os.Stat("/sys/module/" + module); err == nil {
		return nil // loaded, or built in
	}
	out, err := exec.Command("modprobe", module).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %w: %s", module, err, bytes.TrimSpace(out))
	}
	return nil
}

// kernelTunnels are the tunnels st needs: tunl0 (ipip: IPv4 in IPv4)
// always, sit0 (IPv6 in IPv4) for IPv6 VIPs, ip6tnl0 (ip6_tunnel: IPv4
// and IPv6 in IPv6) when the interface has an IPv6 address to tunnel to.
func kernelTunnels(st *State) ([]kernelTunnel, error) {
	ts := []kernelTunnel{{"ipip", "tunl0"}}
	for _, v := range st.VIPs {
		if v.Is6() {
			ts = append(ts, kernelTunnel{"sit", "sit0"})
			break
		}
	}
	locals, err := localAddrs(st.Interface)
	if err != nil {
		return nil, err
	}
	for _, a := range locals {
		if a.Is6() {
			ts = append(ts, kernelTunnel{"ip6_tunnel", "ip6tnl0"})
			break
		}
	}
	return ts, nil
}

// loadTunnels loads the modules of st's tunnels (not undone: a module
// may serve others, and unloading is the administrator's call).
func loadTunnels(st *State) error {
	ts, err := kernelTunnels(st)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := modprobe(t.module); err != nil {
			return err
		}
	}
	return nil
}

// kernelSteps set the fallback tunnels up and, for those that deliver
// IPv4, their reverse-path filter loose: a decapsulated packet arrives on
// tunl0, which the client's address is not routed through.
func kernelSteps(st *State) ([]step, error) {
	ts, err := kernelTunnels(st)
	if err != nil {
		return nil, err
	}
	var steps []step
	for _, t := range ts {
		steps = append(steps, linkUpStep(t.device))
		if t.device != "sit0" {
			steps = append(steps, rpFilterStep(t.device))
		}
	}
	return steps, nil
}

func linkUpStep(dev string) step {
	return step{
		what: fmt.Sprintf("link %s up", dev),
		holds: func() (bool, error) {
			l, err := netlink.LinkByName(dev)
			if err != nil {
				return false, fmt.Errorf("%w (is net.core.fb_tunnels_only_for_init_net set? use --decap ebpf)", err)
			}
			return l.Attrs().Flags&net.FlagUp != 0, nil
		},
		apply: func() (Change, error) {
			l, err := netlink.LinkByName(dev)
			if err != nil {
				return Change{}, err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return Change{}, err
			}
			return Change{Kind: KindLinkUp, Interface: dev}, nil
		},
	}
}
