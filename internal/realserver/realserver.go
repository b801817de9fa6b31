//go:build linux

package realserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// VIPInterface holds the VIPs: the loopback interface answers no ARP on
// any kernel, needs no module, and is where the LVS tutorials put them
// (lo:0).
const VIPInterface = "lo"

// vipLabel marks our IPv4 VIPs in `ip addr` (lo:fulcrum, like lo:0).
const vipLabel = VIPInterface + ":fulcrum"

// step is one condition of a set-up real server: whether it holds, and
// how to make it hold. apply returns the change to record, or a zero
// Change when there is nothing to undo later.
type step struct {
	what  string
	holds func() (bool, error)
	apply func() (Change, error)
}

// Up makes the host a real server as o says, printing to w each change it
// makes and recording it in the state file (after each change, so that a
// failure half-way leaves a state Down can undo). What already holds is
// left alone, so Up run again changes nothing; an existing state file is
// added to, never forgotten.
func Up(o Options, w io.Writer) (*State, error) {
	if len(o.VIPs) == 0 {
		return nil, errors.New("realserver: no VIP")
	}
	if o.Mode != xdp.ModeDirect && o.Mode != xdp.ModeTunnel {
		return nil, fmt.Errorf("realserver: mode %v: want direct or tunnel", o.Mode)
	}
	path := orDefault(o.StatePath)
	unlock, err := lockState(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(path)
	if errors.Is(err, ErrStaleState) {
		fmt.Fprintf(w, "ignoring %v\n", err)
		st, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = &State{}
		thisNetns(st)
	}
	iface := o.Interface
	if iface == "" {
		iface = st.Interface
	}
	if iface == "" {
		if iface, err = defaultInterface(); err != nil && o.Mode == xdp.ModeTunnel {
			return nil, err
		}
	}
	st.Mode = o.Mode.String()
	st.Interface = iface
	for _, v := range o.VIPs {
		if v = v.Unmap(); !slices.Contains(st.VIPs, v) {
			st.VIPs = append(st.VIPs, v)
		}
	}
	if o.Mode == xdp.ModeTunnel {
		d := o.Decap
		if d == DecapAuto && st.Decap != "" {
			d, _ = ParseDecap(st.Decap)
		}
		if d == DecapAuto {
			d = DecapEBPF
			if kernelDecap() == nil {
				d = DecapKernel
			}
		} else if d == DecapKernel {
			if err := kernelDecap(); err != nil {
				return nil, fmt.Errorf("realserver: decap kernel: %w (use --decap ebpf)", err)
			}
		}
		st.Decap = d.String()
		if d == DecapKernel {
			if err := loadTunnels(st); err != nil {
				return nil, fmt.Errorf("realserver: decap kernel: %w", err)
			}
		}
	}
	steps, err := plan(st, o.XDPMode)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		ok, err := s.holds()
		if err != nil {
			return st, fmt.Errorf("realserver: %s: %w", s.what, err)
		}
		if ok {
			fmt.Fprintf(w, "unchanged: %s\n", s.what)
			continue
		}
		c, err := s.apply()
		if err != nil {
			return st, fmt.Errorf("realserver: %s: %w", s.what, err)
		}
		if c.Kind == "" {
			fmt.Fprintf(w, "set: %s\n", s.what)
			continue
		}
		if r := st.find(c); r != nil {
			// Done before and undone by someone since: the first
			// record keeps the value to restore.
			old := r.Old
			*r = c
			if r.Kind == KindSysctl || r.Kind == KindRoute {
				r.Old = old
			}
		} else {
			st.Changes = append(st.Changes, c)
		}
		fmt.Fprintln(w, c)
		if err := st.save(path); err != nil {
			return st, err
		}
	}
	if err := st.save(path); err != nil {
		return st, err
	}
	return st, nil
}

// lockState serialises Up and Down on the directory of the state file
// (flock), so that two runs at once neither interleave their changes nor
// lose one another's records.
func lockState(path string) (unlock func(), err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("realserver: state: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("realserver: state: lock %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("realserver: state: lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// plan lists the conditions of the set-up st describes.
func plan(st *State, xdpMode xdplink.Mode) ([]step, error) {
	var steps []step
	var has4 bool
	for _, v := range st.VIPs {
		has4 = has4 || v.Is4()
	}
	ifaces := []string{"all"}
	if st.Interface != "" {
		ifaces = append(ifaces, st.Interface)
	}
	if has4 {
		for _, i := range ifaces {
			steps = append(steps, sysctlStep(confPath(i, arpIgnore), "1", "1", "2", "8"))
		}
		for _, i := range ifaces {
			steps = append(steps, sysctlStep(confPath(i, arpAnnounce), "2", "2"))
		}
	}
	for _, v := range st.VIPs {
		steps = append(steps, addrStep(VIPInterface, VIPPrefix(v)))
	}
	if st.Mode != xdp.ModeTunnel.String() {
		return steps, nil
	}
	if st.Interface == "" {
		return nil, errors.New("realserver: tunnel mode needs the interface the tunnelled packets arrive on")
	}
	switch st.Decap {
	case DecapEBPF.String():
		steps = append(steps, xdpSteps(st, xdpMode)...)
	case DecapKernel.String():
		ks, err := kernelSteps(st)
		if err != nil {
			return nil, err
		}
		steps = append(steps, ks...)
	}
	rs, err := routeSteps(st)
	if err != nil {
		return nil, err
	}
	steps = append(steps, rs...)
	return append(steps, rpFilterStep(st.Interface)), nil
}

// sysctlStep wants path at one of ok, and sets it to set.
func sysctlStep(path, set string, ok ...string) step {
	return step{
		what: fmt.Sprintf("%s = %s", sysctlName(path), strings.Join(ok, " or ")),
		holds: func() (bool, error) {
			v, err := readSysctl(path)
			return slices.Contains(ok, v), err
		},
		apply: func() (Change, error) {
			old, err := readSysctl(path)
			if err != nil {
				return Change{}, err
			}
			if err := writeSysctl(path, set); err != nil {
				return Change{}, err
			}
			return Change{Kind: KindSysctl, Path: path, Old: old, New: set}, nil
		},
	}
}

// rpFilterStep wants reverse-path filtering on iface loose or off. The
// kernel applies the larger of all and iface, so setting iface to 2 is
// enough whatever all says, and is the only change made.
func rpFilterStep(iface string) step {
	path := confPath(iface, rpFilter)
	s := sysctlStep(path, "2", "0", "2")
	s.what = fmt.Sprintf("rp_filter on %s loose or off (the larger of net.ipv4.conf.all.rp_filter and %s is 0 or 2)", iface, sysctlName(path))
	s.holds = func() (bool, error) {
		all, err := readSysctl(confPath("all", rpFilter))
		if err != nil {
			return false, err
		}
		v, err := readSysctl(path)
		if err != nil {
			return false, err
		}
		a, _ := strconv.Atoi(all)
		b, _ := strconv.Atoi(v)
		return max(a, b) != 1, nil
	}
	return s
}

func addrStep(iface string, p netip.Prefix) step {
	return step{
		what: fmt.Sprintf("address %s on %s", p, iface),
		holds: func() (bool, error) {
			return hasAddr(iface, p)
		},
		apply: func() (Change, error) {
			l, err := netlink.LinkByName(iface)
			if err != nil {
				return Change{}, err
			}
			a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if p.Addr().Is4() {
				a.Label = vipLabel
			} else {
				a.Flags = unix.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(l, a); err != nil {
				return Change{}, err
			}
			return Change{Kind: KindAddress, Interface: iface, Prefix: p}, nil
		},
	}
}

func hasAddr(iface string, p netip.Prefix) (bool, error) {
	addrs, err := ifaceAddrs(iface)
	if err != nil {
		return false, err
	}
	return slices.Contains(addrs, p), nil
}

// ifaceAddrs lists the addresses of iface, with their prefix lengths.
func ifaceAddrs(iface string) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, err
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return out, nil
}

// localAddrs are the addresses of iface a director may tunnel to: global
// unicast ones (private included; not link-local).
func localAddrs(iface string) ([]netip.Addr, error) {
	ps, err := ifaceAddrs(iface)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, p := range ps {
		if a := p.Addr(); a.IsGlobalUnicast() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// xdpSteps attach the decapsulator to st.Interface and keep its maps at
// the interface's addresses and the VIPs.
func xdpSteps(st *State, mode xdplink.Mode) []step {
	iface := st.Interface
	attached := func() (*decap.Program, error) {
		c := st.find(Change{Kind: KindXDP, Interface: iface})
		if c == nil {
			return nil, nil
		}
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return nil, err
		}
		p, err := decap.Open(l.Attrs().Index, ebpf.ProgramID(c.ProgramID))
		if errors.Is(err, decap.ErrNotOurs) {
			return nil, nil
		}
		return p, err
	}
	attach := step{
		what: fmt.Sprintf("xdp decapsulator attached to %s", iface),
		holds: func() (bool, error) {
			p, err := attached()
			p.Close()
			return p != nil, err
		},
		apply: func() (Change, error) {
			l, err := netlink.LinkByName(iface)
			if err != nil {
				return Change{}, err
			}
			p, err := decap.Load()
			if err != nil {
				return Change{}, err
			}
			defer p.Close()
			// Maps first: the program decapsulates from its first packet.
			if err := fillMaps(p, st); err != nil {
				return Change{}, err
			}
			id, err := p.ID()
			if err != nil {
				return Change{}, err
			}
			got, err := p.Attach(l.Attrs().Index, mode)
			if err != nil {
				return Change{}, err
			}
			return Change{Kind: KindXDP, Interface: iface, IfIndex: l.Attrs().Index, ProgramID: uint32(id), XDPMode: got.String()}, nil
		},
	}
	maps := step{
		what: fmt.Sprintf("decapsulator accepts tunnels to the addresses of %s carrying packets to %s", iface, joinAddrs(st.VIPs)),
		holds: func() (bool, error) {
			p, err := attached()
			if p == nil || err != nil {
				return false, err
			}
			defer p.Close()
			return mapsHold(p, st)
		},
		apply: func() (Change, error) {
			p, err := attached()
			if err != nil {
				return Change{}, err
			}
			if p == nil {
				return Change{}, errors.New("decapsulator not attached")
			}
			defer p.Close()
			return Change{}, fillMaps(p, st)
		},
	}
	return []step{attach, maps}
}

func fillMaps(p *decap.Program, st *State) error {
	locals, err := localAddrs(st.Interface)
	if err != nil {
		return err
	}
	if len(locals) == 0 {
		return fmt.Errorf("%s has no address a director could tunnel to", st.Interface)
	}
	if err := p.SetLocals(locals); err != nil {
		return err
	}
	return p.SetVIPs(st.VIPs)
}

func mapsHold(p *decap.Program, st *State) (bool, error) {
	want, err := localAddrs(st.Interface)
	if err != nil {
		return false, err
	}
	got, err := p.Locals()
	if err != nil || !slices.Equal(got, want) {
		return false, err
	}
	vips := slices.Clone(st.VIPs)
	slices.SortFunc(vips, netip.Addr.Compare)
	got, err = p.VIPs()
	return slices.Equal(got, vips), err
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// defaultInterface is the interface of the IPv4 default route, else of
// the IPv6 one, else the only interface with an address.
func defaultInterface() (string, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteList(nil, fam)
		if err != nil {
			return "", fmt.Errorf("realserver: routes: %w", err)
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && r.LinkIndex > 0 {
				l, err := netlink.LinkByIndex(r.LinkIndex)
				if err != nil {
					return "", fmt.Errorf("realserver: default route: %w", err)
				}
				return l.Attrs().Name, nil
			}
		}
	}
	// No default route: the one interface that has an address a
	// director could send to, if there is just one.
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("realserver: links: %w", err)
	}
	var found []string
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.Flags&net.FlagUp == 0 {
			continue
		}
		if locals, err := localAddrs(a.Name); err == nil && len(locals) > 0 {
			found = append(found, a.Name)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return "", fmt.Errorf("realserver: no default route, and %d interfaces with addresses (%s): name the one facing the director (--interface)", len(found), strings.Join(found, ", "))
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
