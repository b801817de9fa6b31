package config

import (
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// HA configures the VRRP groups that move virtual IPs between balancer
// nodes (what heartbeat, keepalived or Pacemaker do in the tutorials).
type HA struct {
	Groups []HAGroup `yaml:"groups,omitempty"`
	// SyncGroups fail over together: a fault in one member is a fault in
	// all, and they share their tracking.
	SyncGroups []SyncGroup `yaml:"sync_groups,omitempty"`
	// HelloPort is the UDP port of fulcrum's hello between the nodes of
	// each group (config hash, state, priority; see docs/ha.md); default
	// 8051 when there are groups, 0 turns it off.
	HelloPort int `yaml:"hello_port"`
}

// HAGroup is one VRRP virtual router.
type HAGroup struct {
	// Name identifies the group (`fulcrum ha release NAME`, status, alerts).
	Name string `yaml:"name"`
	// Interface carries the adverts and receives the VIPs.
	Interface string `yaml:"interface"`
	// VRID is the virtual router ID, 1-255, unique per interface and
	// family; keepalived's virtual_router_id.
	VRID int `yaml:"vrid"`
	// VIPs are the virtual addresses with an optional prefix length
	// (192.168.0.105/24); all of one family.
	VIPs []string `yaml:"vips"`
	// Priority maps node names to priorities 1-255 (255: the address
	// owner); every node that runs this group must be listed.
	Priority map[string]int `yaml:"priority"`
	// AdvertInterval, a multiple of 10ms; default 100ms.
	AdvertInterval Duration `yaml:"advert_interval"`
	// MasterDownAdverts is how many adverts a backup misses, plus its skew
	// time, before it takes over from a silent master: 2-255, default 2.
	// RFC 9568 (and keepalived) use 3; 2 fails over one interval sooner
	// and still rides out a single lost advert.
	MasterDownAdverts int `yaml:"master_down_adverts"`
	// Preempt lets a higher-priority node take the VIPs back from a live
	// master (heartbeat's auto_failback); default true, as in VRRP.
	Preempt *bool `yaml:"preempt,omitempty"`
	// PreemptDelay waits this long before preempting a live master.
	PreemptDelay Duration `yaml:"preempt_delay"`
	// InitDead is how long a starting node listens for an existing master
	// before it may take the VIPs (heartbeat's initdead), when that is
	// longer than its master-down interval; the first advert heard ends
	// it. Default 2s: a master advertising every second (keepalived's
	// default advert_int) is heard even if one advert is lost. It delays
	// only a start with no master on the link (a cold start of the whole
	// cluster, a lone node); 0s turns it off.
	InitDead Duration `yaml:"initdead"`
	// HandoverTimeout bounds a planned hand-over (ha release, SIGTERM,
	// preemption): the old master keeps serving the TCP connections it has
	// on the VIPs for up to this long, their packets relayed to it by the
	// new master; default 10s. 0s: connections in flight are reset.
	HandoverTimeout Duration `yaml:"handover_timeout"`
	// UnicastPeers, if given, replaces multicast: adverts go to each peer
	// (one per other node) and only they are heard.
	UnicastPeers []string `yaml:"unicast_peers,omitempty"`
	// AuthKeyFile holds a shared secret: adverts are authenticated with
	// HMAC-SHA256 and replay-protected. Every node must use it; plain
	// VRRP peers (keepalived, routers) can then no longer take part.
	AuthKeyFile string `yaml:"auth_key_file,omitempty"`
	// AuthKey is AuthKeyFile's content without surrounding white space,
	// read and checked (at least 16 bytes) by Load; nil without a file.
	AuthKey []byte `yaml:"-" json:"-"`
	// GARP tunes the gratuitous ARP / unsolicited NA sent on taking over.
	GARP GARP `yaml:"garp"`
	// Track lowers this node's priority, or puts the group in fault, when
	// what it depends on fails.
	Track Track `yaml:"track"`
	// Notify runs on every state change with FULCRUM_GROUP,
	// FULCRUM_PREV_STATE and FULCRUM_STATE in its environment
	// (keepalived's notify scripts).
	Notify []string `yaml:"notify,omitempty"`
}

// GARP tunes the announcements of a node that takes the VIPs.
type GARP struct {
	// Repeat is how many gratuitous ARPs / NAs are sent; default 3.
	Repeat int `yaml:"repeat"`
	// Interval between them; default 10ms.
	Interval Duration `yaml:"interval"`
	// Refresh re-announces periodically while master; 0 (default) never.
	Refresh Duration `yaml:"refresh"`
}

// Track lists what a group depends on.
type Track struct {
	// Services: a tracked service with no healthy backend (admin state
	// does not count), or whose listener failed, counts as failed.
	Services []string `yaml:"services,omitempty"`
	// Interfaces: a tracked interface that is down counts as failed.
	Interfaces []string `yaml:"interfaces,omitempty"`
	// Scripts: a tracked script exiting non-zero counts as failed.
	Scripts []TrackScript `yaml:"scripts,omitempty"`
	// Ping: the group counts as failed when none of these addresses
	// answers (heartbeat's ipfail).
	Ping []string `yaml:"ping,omitempty"`
	// Weight is how much each failed service, interface or ping lowers the
	// priority; 0 (default) puts the group in fault instead.
	Weight int `yaml:"weight"`
	// Interval between evaluations of scripts and pings; default 1s.
	Interval Duration `yaml:"interval"`
}

// TrackScript is one tracked command.
type TrackScript struct {
	Command []string `yaml:"command"`
	// Weight lowers the priority while the script fails; 0 (default) is a
	// fault.
	Weight int `yaml:"weight"`
	// Timeout bounds a run; default 2s.
	Timeout Duration `yaml:"timeout"`
}

// SyncGroup binds groups that must fail over together.
type SyncGroup struct {
	Name   string   `yaml:"name"`
	Groups []string `yaml:"groups"`
}

// HA defaults.
const (
	defaultAdvertInterval    = 100 * time.Millisecond
	defaultMasterDownAdverts = 2
	defaultInitDead          = 2 * time.Second
	defaultHandoverTimeout   = 10 * time.Second
	defaultGARPRepeat        = 3
	defaultGARPInterval      = 10 * time.Millisecond
	defaultTrackInterval     = time.Second
	defaultScriptTimeout     = 2 * time.Second
	// defaultHelloPort is unassigned by IANA and close to nothing common.
	defaultHelloPort = 8051
)

// PreemptValue reports whether the group preempts (default true).
func (g *HAGroup) PreemptValue() bool { return g.Preempt == nil || *g.Preempt }

// VIPPrefixes returns the parsed VIPs; valid only after Load.
func (g *HAGroup) VIPPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(g.VIPs))
	for _, v := range g.VIPs {
		p, _ := parseVIP(v)
		out = append(out, p)
	}
	return out
}

// parseVIP reads "192.0.2.1" or "192.0.2.1/24" into a prefix whose
// address is the VIP (not masked).
func parseVIP(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func (c *Config) haDefaults() {
	if len(c.HA.Groups) > 0 {
		defaultTo(c, &c.HA.HelloPort, "ha.hello_port", defaultHelloPort)
	}
	for i := range c.HA.Groups {
		g := &c.HA.Groups[i]
		p := "ha.groups[" + strconv.Itoa(i) + "]"
		defaultTo(c, &g.AdvertInterval, p+".advert_interval", Duration(defaultAdvertInterval))
		defaultTo(c, &g.MasterDownAdverts, p+".master_down_adverts", defaultMasterDownAdverts)
		defaultTo(c, &g.InitDead, p+".initdead", Duration(defaultInitDead))
		defaultTo(c, &g.HandoverTimeout, p+".handover_timeout", Duration(defaultHandoverTimeout))
		g.AuthKeyFile = c.FilePath(g.AuthKeyFile)
		if g.Preempt == nil {
			g.Preempt = ptr(true) // VRRP's default, spelled out for the effective config
		}
		defaultTo(c, &g.GARP.Repeat, p+".garp.repeat", defaultGARPRepeat)
		defaultTo(c, &g.GARP.Interval, p+".garp.interval", Duration(defaultGARPInterval))
		defaultTo(c, &g.Track.Interval, p+".track.interval", Duration(defaultTrackInterval))
		for j := range g.Track.Scripts {
			defaultTo(c, &g.Track.Scripts[j].Timeout, p+".track.scripts["+strconv.Itoa(j)+"].timeout", Duration(defaultScriptTimeout))
		}
	}
}

func (k *checker) ha() {
	if p := k.c.HA.HelloPort; p < 0 || p > 65535 {
		k.errorf("ha.hello_port", "want 1-65535, or 0 to turn the hello off; got %d", p)
	} else if p > 0 && len(k.c.HA.Groups) > 0 {
		// The hello binds the port on every address.
		for i := range k.c.Services {
			s := &k.c.Services[i]
			if a, err := netip.ParseAddrPort(s.Listen); err == nil && s.Protocol == ProtoUDP && int(a.Port()) == p {
				k.errorf("ha.hello_port", "%d is the port of udp service %s; pick another for the hello", p, s.Name)
			}
		}
	}
	names := map[string]int{}
	vrids := map[string]int{} // interface/family/vrid → group
	for i := range k.c.HA.Groups {
		g := &k.c.HA.Groups[i]
		p := "ha.groups[" + strconv.Itoa(i) + "]"
		k.uniqueName(p+".name", g.Name, "group", "ha.groups", i, names)
		if g.Interface == "" {
			k.errorf(p+".interface", "required: the interface that carries the VIPs")
		}
		if g.VRID < 1 || g.VRID > 255 {
			k.errorf(p+".vrid", "want 1-255, got %d", g.VRID)
		}
		if len(g.VIPs) == 0 {
			k.errorf(p+".vips", "at least one virtual address is required")
		}
		family := 0
		seen := map[netip.Addr]bool{}
		for j, v := range g.VIPs {
			vp := p + ".vips[" + strconv.Itoa(j) + "]"
			pfx, ok := parseVIP(v)
			if !ok || pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() || pfx.Addr().IsUnspecified() {
				k.errorf(vp, "want an IP address with an optional prefix length like 192.168.0.105/24, got %q", v)
				continue
			}
			f := 4
			if pfx.Addr().Is6() {
				f = 6
			}
			if family == 0 {
				family = f
			} else if f != family {
				k.errorf(vp, "mixes IPv4 and IPv6: VRRP runs one group per family, use two groups")
			}
			if seen[pfx.Addr()] {
				k.errorf(vp, "duplicate virtual address %s", pfx.Addr())
			}
			seen[pfx.Addr()] = true
		}
		if g.VRID >= 1 && g.VRID <= 255 && g.Interface != "" && family != 0 {
			key := g.Interface + "/" + strconv.Itoa(family) + "/" + strconv.Itoa(g.VRID)
			if first, dup := vrids[key]; dup {
				k.errorf(p+".vrid", "vrid %d on %s is already used by ha.groups[%d]", g.VRID, g.Interface, first)
			} else {
				vrids[key] = i
			}
		}
		if len(g.Priority) == 0 {
			k.errorf(p+".priority", "required: a priority for each node, like { lb1: 150, lb2: 100 }")
		} else if _, ok := g.Priority[k.c.Node.Name]; !ok && k.c.Node.Name != "" {
			k.errorf(p+".priority", "no priority for this node %q (listed: %s)", k.c.Node.Name, orList(quoteAll(sortedKeys(g.Priority))))
		}
		for _, node := range sortedKeys(g.Priority) {
			if v := g.Priority[node]; v < 1 || v > 255 {
				k.errorf(p+".priority."+node, "want 1-255, got %d", v)
			}
		}
		if iv := g.AdvertInterval.D(); iv < 10*time.Millisecond || iv > 40950*time.Millisecond || iv%(10*time.Millisecond) != 0 {
			k.errorf(p+".advert_interval", "want a multiple of 10ms from 10ms to 40.95s, got %s", g.AdvertInterval)
		}
		if n := g.MasterDownAdverts; n < 2 || n > 255 {
			k.errorf(p+".master_down_adverts", "want 2-255 (RFC 9568 uses 3), got %d", n)
		}
		if g.PreemptDelay < 0 {
			k.errorf(p+".preempt_delay", "want a non-negative duration, got %s", g.PreemptDelay)
		}
		if g.InitDead < 0 {
			k.errorf(p+".initdead", "want a non-negative duration, got %s", g.InitDead)
		}
		g.AuthKey = k.secret(p+".auth_key_file", g.AuthKeyFile)
		for j, peer := range g.UnicastPeers {
			a, err := netip.ParseAddr(peer)
			if err != nil || a.IsUnspecified() || (family != 0 && (a.Is4() != (family == 4))) {
				k.errorf(p+".unicast_peers["+strconv.Itoa(j)+"]", "want an IP address of the VIPs' family, got %q", peer)
			}
		}
		if g.GARP.Repeat < 1 || g.GARP.Repeat > 100 {
			k.errorf(p+".garp.repeat", "want 1-100, got %d", g.GARP.Repeat)
		}
		if g.GARP.Interval < 0 || g.GARP.Refresh < 0 {
			k.errorf(p+".garp", "durations must not be negative")
		}
		t := &g.Track
		for j, s := range t.Services {
			if k.c.Service(s) == nil {
				k.errorf(p+".track.services["+strconv.Itoa(j)+"]", "no service named %q", s)
			}
		}
		for j, ifname := range t.Interfaces {
			if ifname == "" {
				k.errorf(p+".track.interfaces["+strconv.Itoa(j)+"]", "empty interface name")
			}
		}
		for j, s := range t.Scripts {
			sp := p + ".track.scripts[" + strconv.Itoa(j) + "]"
			if len(s.Command) == 0 || s.Command[0] == "" {
				k.errorf(sp+".command", "required: the program and its arguments")
			}
			if s.Weight < 0 || s.Weight > 254 {
				k.errorf(sp+".weight", "want 0 (fault) to 254, got %d", s.Weight)
			}
			if s.Timeout <= 0 {
				k.errorf(sp+".timeout", "want a duration above 0, got %s", s.Timeout)
			}
		}
		for j, target := range t.Ping {
			if a, err := netip.ParseAddr(target); err != nil || a.IsUnspecified() {
				k.errorf(p+".track.ping["+strconv.Itoa(j)+"]", "want an IP address, got %q", target)
			}
		}
		if t.Weight < 0 || t.Weight > 254 {
			k.errorf(p+".track.weight", "want 0 (fault) to 254, got %d", t.Weight)
		}
		if t.Interval <= 0 {
			k.errorf(p+".track.interval", "want a duration above 0, got %s", t.Interval)
		}
		if len(g.Notify) > 0 && g.Notify[0] == "" {
			k.errorf(p+".notify", "the program must not be empty")
		}
	}
	inSync := map[string]string{}
	for i, sg := range k.c.HA.SyncGroups {
		p := "ha.sync_groups[" + strconv.Itoa(i) + "]"
		if sg.Name == "" {
			k.errorf(p+".name", "required")
		}
		if len(sg.Groups) < 2 {
			k.errorf(p+".groups", "want at least two groups to keep together")
		}
		for j, name := range sg.Groups {
			gp := p + ".groups[" + strconv.Itoa(j) + "]"
			if _, ok := names[name]; !ok {
				k.errorf(gp, "no ha group named %q", name)
				continue
			}
			if other, dup := inSync[name]; dup {
				k.errorf(gp, "group %q is already in sync group %q", name, other)
			}
			inSync[name] = sg.Name
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
