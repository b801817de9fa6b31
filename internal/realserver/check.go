//go:build linux

package realserver

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// ErrNoState is returned by Check when there is no state file.
var ErrNoState = errors.New("not set up: no state file")

// Check reads the state file at path and tests that what Up set up still
// holds (someone may have reset arp_ignore, removed a VIP, detached the
// program). It changes nothing.
func Check(path string) (*Report, error) {
	path = orDefault(path)
	st, err := LoadState(path)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("realserver: %s: %w", path, ErrNoState)
	}
	mode := xdplink.Auto
	var xdp *Change
	if xdp = st.find(Change{Kind: KindXDP, Interface: st.Interface}); xdp != nil {
		mode, _ = xdplink.ParseMode(xdp.XDPMode)
	}
	steps, err := plan(st, mode)
	if err != nil {
		return nil, err
	}
	r := &Report{State: st}
	for _, s := range steps {
		ok, err := s.holds()
		r.Checks = append(r.Checks, CheckResult{What: s.what, OK: ok && err == nil, Err: err})
	}
	if xdp != nil {
		if l, err := netlink.LinkByName(st.Interface); err == nil {
			if p, err := decap.Open(l.Attrs().Index, ebpf.ProgramID(xdp.ProgramID)); err == nil {
				r.Decap, _ = p.Stats()
				p.Close()
			}
		}
	}
	return r, nil
}

// VIPPrefix is how a VIP is put on VIPInterface: a host address.
func VIPPrefix(v netip.Addr) netip.Prefix { return netip.PrefixFrom(v, v.BitLen()) }
