package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Director is this node's kernel data plane: an XDP program on the
// interfaces where VIP traffic arrives forwards the packets of services
// with forwarding direct or tunnel to their backends. Its settings are the
// node's, like ipvsadm's --start-daemon and the sysctls of LVS.
type Director struct {
	// Interfaces receive the VIP traffic; the XDP program is attached to
	// each. Required when a service uses forwarding direct or tunnel.
	Interfaces []string `yaml:"interfaces,omitempty"`
	// XDPMode is auto (default: native where the driver supports it,
	// else generic), native or generic. native fails on a driver without
	// XDP support instead of falling back.
	XDPMode string `yaml:"xdp_mode"`
	// FlowTableSize is how many flows (client address and port to VIP
	// and port) the node remembers, least recently used first out;
	// default 262144.
	FlowTableSize int `yaml:"flow_table_size"`
	// FlowTimeout: a flow idle this long is scheduled afresh; default 300s.
	FlowTimeout Duration `yaml:"flow_timeout"`
	// TunnelSource is the outer source address of tunnelled packets;
	// default "": the address of the egress interface toward the backend.
	TunnelSource string `yaml:"tunnel_source,omitempty"`
	// Sync sends the flows this node creates to its peers, so that they
	// survive a fail-over (the IPVS sync daemon's job).
	Sync FlowSync `yaml:"sync,omitempty"`
}

// FlowSync configures the flow sync between directors.
type FlowSync struct {
	// Listen is the UDP ip:port sync messages are received on and sent
	// from; "" (default) turns the sync off.
	Listen string `yaml:"listen,omitempty"`
	// Peers are the ip:port of the other directors; default the HA
	// groups' unicast_peers at Listen's port.
	Peers []string `yaml:"peers,omitempty"`
	// AuthKeyFile holds the secret the messages are authenticated with;
	// default the first HA group's auth_key_file. Without one, messages
	// are not authenticated.
	AuthKeyFile string `yaml:"auth_key_file,omitempty"`
	// AuthKey is AuthKeyFile's content without surrounding white space,
	// read and checked (at least 16 bytes) by Load; nil without a file.
	AuthKey []byte `yaml:"-" json:"-"`
	// MaxRate is the most flow entries sent per second; default 50000.
	MaxRate int `yaml:"max_rate"`
}

// Director defaults.
const (
	defaultXDPMode        = "auto"
	defaultFlowTableSize  = 1 << 18
	defaultFlowTimeout    = 300 * time.Second
	defaultSyncRate       = 50000
	defaultKernelSchedule = "maglev"
	minFlowTableSize      = 1024
	maxFlowTableSize      = 1 << 26
)

var (
	forwardings = []string{ForwardProxy, ForwardDirect, ForwardTunnel}
	// forwardingSpellings maps what ipvsadm and ldirectord users write
	// to the normalised mode.
	forwardingSpellings = map[string]string{
		"proxy":  ForwardProxy,
		"direct": ForwardDirect, "gate": ForwardDirect, "dr": ForwardDirect, "droute": ForwardDirect,
		"tunnel": ForwardTunnel, "ipip": ForwardTunnel, "tun": ForwardTunnel,
	}
	// kernelSchedulers are the schedulers the director's data plane
	// implements: a table lookup per packet, no connection counts.
	kernelSchedulers = []string{"rr", "wrr", "maglev", "sh", "mh"}
	xdpModes         = []string{"auto", "native", "generic"}
)

// ForwardingSpellings lists every accepted value of forwarding, for the
// schema.
func ForwardingSpellings() []string {
	out := make([]string, 0, len(forwardingSpellings))
	for k := range forwardingSpellings {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// KernelSchedulers returns the schedulers services with forwarding direct
// or tunnel may use.
func KernelSchedulers() []string { return slices.Clone(kernelSchedulers) }

// UsesDirector reports whether any service is forwarded in the kernel.
func (c *Config) UsesDirector() bool {
	return slices.ContainsFunc(c.Services, func(s Service) bool { return s.InKernel() })
}

// TunnelSourceAddr returns the parsed tunnel_source; invalid (IsValid
// false) when none is set.
func (d *Director) TunnelSourceAddr() netip.Addr {
	a, _ := netip.ParseAddr(d.TunnelSource)
	return a
}

// ErrNAT is ParseForwarding's error for the spellings of LVS's NAT mode
// (masq, nat, masquerading), which fulcrum does not offer.
var ErrNAT = errors.New("NAT is not offered")

// ParseForwarding returns the mode (ForwardProxy, ForwardDirect or
// ForwardTunnel) that s, an accepted value of forwarding, names: the
// modes and the spellings of ipvsadm and ldirectord (gate, dr, droute;
// ipip, tun). NAT's spellings return ErrNAT.
func ParseForwarding(s string) (string, error) {
	if m, ok := forwardingSpellings[s]; ok {
		return m, nil
	}
	switch strings.ToLower(s) {
	case "masq", "nat", "masquerading":
		return "", ErrNAT
	}
	return "", fmt.Errorf("unknown value %q; want proxy, direct (or gate, dr, droute) or tunnel (or ipip, tun)", s)
}

// normalizeForwarding rewrites an accepted spelling of s.Forwarding to its
// mode; an unknown value stays for Validate to report.
func normalizeForwarding(s *Service) {
	if s.Forwarding == "" {
		s.Forwarding = ForwardProxy
		return
	}
	if m, err := ParseForwarding(s.Forwarding); err == nil {
		s.Forwarding = m
	}
}

// kernelServiceDefaults fills what a director service has instead of the
// proxy's defaults, and gives its backends without a port the service's.
func (c *Config) kernelServiceDefaults(s *Service, p string) {
	defaultTo(c, &s.Scheduler, p+".scheduler", defaultKernelSchedule)
	ap, err := netip.ParseAddrPort(s.Listen)
	if err != nil {
		return
	}
	withPort := func(addr *string) {
		if a, err := netip.ParseAddr(*addr); err == nil {
			*addr = netip.AddrPortFrom(a, ap.Port()).String()
		}
	}
	for j := range s.Backends {
		withPort(&s.Backends[j].Address)
	}
	withPort(&s.Fallback)
}

// directorDefaults fills the director section when it is given or a
// service needs it; otherwise it stays empty and out of the effective
// config.
func (c *Config) directorDefaults() {
	if !c.given("director") && !c.UsesDirector() {
		return
	}
	d := &c.Director
	defaultTo(c, &d.XDPMode, "director.xdp_mode", defaultXDPMode)
	defaultTo(c, &d.FlowTableSize, "director.flow_table_size", defaultFlowTableSize)
	defaultTo(c, &d.FlowTimeout, "director.flow_timeout", Duration(defaultFlowTimeout))
	s := &d.Sync
	if s.Listen == "" {
		return
	}
	defaultTo(c, &s.MaxRate, "director.sync.max_rate", defaultSyncRate)
	if !c.given("director.sync.auth_key_file") && s.AuthKeyFile == "" && len(c.HA.Groups) > 0 {
		s.AuthKeyFile = c.HA.Groups[0].AuthKeyFile // already made absolute
	} else {
		s.AuthKeyFile = c.FilePath(s.AuthKeyFile)
	}
	if !c.given("director.sync.peers") && len(s.Peers) == 0 {
		ap, err := netip.ParseAddrPort(s.Listen)
		if err != nil {
			return
		}
		for _, g := range c.HA.Groups {
			for _, peer := range g.UnicastPeers {
				a, err := netip.ParseAddr(peer)
				if err != nil {
					continue
				}
				if pp := netip.AddrPortFrom(a, ap.Port()).String(); !slices.Contains(s.Peers, pp) {
					s.Peers = append(s.Peers, pp)
				}
			}
		}
	}
}

// forwarding checks services[i].forwarding and, for a director service,
// the keys that differ from the proxy's. It runs before service, which
// then knows the mode is valid.
func (k *checker) forwarding(i int) {
	s := &k.c.Services[i]
	p := "services[" + strconv.Itoa(i) + "]"
	if f := s.Forwarding; f != "" && !slices.Contains(forwardings, f) { // "": a Config built in code
		switch m, err := ParseForwarding(f); {
		case errors.Is(err, ErrNAT):
			k.errorf(p+".forwarding", "%v: use forwarding: proxy (proxy_protocol.send passes the client's address), direct or tunnel", err)
		case err != nil:
			k.errorf(p+".forwarding", "%v", err)
		default: // a Config built in code, which Load did not normalise
			k.errorf(p+".forwarding", "%q: want %q", f, m)
		}
		return
	}
	if !s.InKernel() {
		if ps := s.Persistence; ps != nil && ps.Group != "" {
			k.errorf(p+".persistence.group", "shared persistence groups are for forwarding direct or tunnel; a proxied service has a table of its own")
		}
		return
	}
	mode := s.Forwarding
	if s.Protocol != ProtoTCP && s.Protocol != ProtoUDP && slices.Contains(protocols, s.Protocol) {
		k.errorf(p+".protocol", "forwarding %s takes tcp or udp, not %s: HTTP needs the proxy", mode, s.Protocol)
	}
	if !slices.Contains(kernelSchedulers, s.Scheduler) {
		k.errorf(p+".scheduler", "scheduler %q does not work with forwarding %s, which keeps no connection counts; want one of %s", s.Scheduler, mode, strings.Join(kernelSchedulers, ", "))
	}
	for _, key := range proxyKeys {
		if k.c.given(p + "." + key) {
			k.errorf(p+"."+key, "%s is a setting of the proxy; forwarding %s passes packets in the kernel (see director.flow_timeout for idle flows)", key, mode)
		}
	}
	if s.Health != nil && s.Health.Passive.Failures > 0 {
		k.errorf(p+".health.passive.failures", "passive checks watch the proxy's connects; forwarding %s sees none", mode)
	}
	ap, err := netip.ParseAddrPort(s.Listen)
	if err != nil {
		return // service reports it
	}
	port := ap.Port()
	checkPort := func(path, addr string) {
		b, err := netip.ParseAddrPort(addr)
		if err != nil {
			return // reported elsewhere
		}
		switch {
		case b.Port() != port && port == 0:
			k.errorf(path, "forwarding %s cannot change ports: give the backend without a port (or port 0) on a port-0 service, got %q", mode, addr)
		case b.Port() != port:
			k.errorf(path, "forwarding %s cannot change ports: want port %d as the service's (or the address alone), got %q", mode, port, addr)
		}
	}
	noPort := map[string]bool{}
	for j := range s.Backends {
		bp := p + ".backends[" + strconv.Itoa(j) + "]"
		checkPort(bp+".address", s.Backends[j].Address)
		if h := s.Backends[j].Health; h != nil && h.Passive.Failures > 0 {
			k.errorf(bp+".health.passive.failures", "passive checks watch the proxy's connects; forwarding %s sees none", mode)
		}
		if s.Backends[j].MaxConnections != 0 {
			k.errorf(bp+".max_connections", "forwarding %s keeps no connection counts; max_connections is for the proxy", mode)
		}
		if h := s.EffectiveHealth(j); port == 0 && h != nil && h.Port == 0 && h.Type != "exec" && h.Type != "ping" {
			hp := p + ".health"
			if s.Backends[j].Health != nil {
				hp = bp + ".health"
			}
			if !noPort[hp] {
				noPort[hp] = true
				k.errorf(hp, "the backends of a port-0 service have no port to check: give health.port")
			}
		}
	}
	if s.Fallback != "" {
		checkPort(p+".fallback", s.Fallback)
	}
}

// persistGroups checks that the services naming one persistence group
// share their VIP and persistence settings.
func (k *checker) persistGroups() {
	first := map[string]int{}
	for i := range k.c.Services {
		s := &k.c.Services[i]
		if !s.InKernel() || s.Persistence == nil || s.Persistence.Group == "" {
			continue
		}
		p := "services[" + strconv.Itoa(i) + "].persistence.group"
		g := s.Persistence.Group
		if !nameRE.MatchString(g) {
			k.errorf(p, "invalid name %q: want letters, digits, '_', '.' and '-', starting with a letter or digit", g)
			continue
		}
		j, seen := first[g]
		if !seen {
			first[g] = i
			continue
		}
		o := &k.c.Services[j]
		a, aerr := netip.ParseAddrPort(s.Listen)
		b, berr := netip.ParseAddrPort(o.Listen)
		if aerr == nil && berr == nil && a.Addr().Unmap() != b.Addr().Unmap() {
			k.errorf(p, "group %q is on VIP %s (services[%d], %q); a persistence group belongs to one VIP", g, b.Addr(), j, o.Name)
		}
		ps, po := s.Persistence, o.Persistence
		if ps.Timeout != po.Timeout || ps.Netmask != po.Netmask || ps.Netmask6 != po.Netmask6 {
			k.errorf(p, "group %q has timeout %s, netmask %d, netmask6 %d in services[%d] (%q); its services share one table and must agree", g, po.Timeout, po.Netmask, po.Netmask6, j, o.Name)
		}
	}
}

// director checks the director section.
func (k *checker) director() {
	d := &k.c.Director
	used := k.c.UsesDirector()
	if used && len(d.Interfaces) == 0 {
		if k.c.given("director") {
			k.errorf("director.interfaces", "required: a service uses forwarding direct or tunnel; name the interfaces where its VIP traffic arrives")
		} else {
			// Point at the service that needs it.
			i := slices.IndexFunc(k.c.Services, func(s Service) bool { return s.InKernel() })
			k.errorf("services["+strconv.Itoa(i)+"].forwarding", "forwarding %s needs director.interfaces: name the interfaces where VIP traffic arrives", k.c.Services[i].Forwarding)
		}
	}
	seen := map[string]int{}
	for j, ifname := range d.Interfaces {
		ip := "director.interfaces[" + strconv.Itoa(j) + "]"
		switch first, dup := seen[ifname]; {
		case ifname == "" || len(ifname) > 15 || strings.ContainsAny(ifname, "/ \t\n"):
			k.errorf(ip, "want an interface name like eth0, got %q", ifname)
		case dup:
			k.errorf(ip, "duplicate interface %q, first at director.interfaces[%d]", ifname, first)
		default:
			seen[ifname] = j
		}
	}
	if !used && !k.c.given("director") {
		return
	}
	k.oneOf("director.xdp_mode", d.XDPMode, xdpModes)
	if n := d.FlowTableSize; n < minFlowTableSize || n > maxFlowTableSize {
		k.errorf("director.flow_table_size", "want %d-%d, got %d", minFlowTableSize, maxFlowTableSize, n)
	}
	if d.FlowTimeout <= 0 {
		k.errorf("director.flow_timeout", "want a duration above 0, got %s", d.FlowTimeout)
	}
	if d.TunnelSource != "" {
		if a, err := netip.ParseAddr(d.TunnelSource); err != nil || a.IsUnspecified() || a.Zone() != "" {
			k.errorf("director.tunnel_source", "want an IP address of this node, got %q", d.TunnelSource)
		}
	}
	s := &d.Sync
	if s.Listen == "" {
		for _, key := range []string{"peers", "auth_key_file", "max_rate"} {
			if k.c.given("director.sync." + key) {
				k.errorf("director.sync."+key, "the sync is off: give director.sync.listen to turn it on")
			}
		}
		return
	}
	ap, ok := k.addr("director.sync.listen", s.Listen, "ip:port", true)
	if !ok {
		return
	}
	if hp := k.c.HA.HelloPort; len(k.c.HA.Groups) > 0 && int(ap.Port()) == hp {
		k.errorf("director.sync.listen", "port %d is ha.hello_port; the sync needs a port of its own", hp)
	}
	if len(s.Peers) == 0 {
		k.errorf("director.sync.peers", "required: no ha group has unicast_peers to take the sync's peers from")
	}
	for j, peer := range s.Peers {
		k.addr("director.sync.peers["+strconv.Itoa(j)+"]", peer, "ip:port", false)
	}
	s.AuthKey = k.secret("director.sync.auth_key_file", s.AuthKeyFile)
	if s.MaxRate < 1 {
		k.errorf("director.sync.max_rate", "want at least 1 entry per second, got %d", s.MaxRate)
	}
}

// describeForwarding names a service's mode for a listen conflict.
func describeForwarding(s *Service) string {
	if s.InKernel() {
		return fmt.Sprintf("forwarding %s", s.Forwarding)
	}
	return "the proxy"
}
