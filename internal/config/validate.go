package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// Limits checked by Validate.
const (
	maxWeight         = 65535 // ipvsadm's limit
	maxRetries        = 16
	minPersistEntries = 64
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	protocols  = []string{ProtoTCP, ProtoUDP, ProtoHTTP}
	proxySends = []string{"", "v1", "v2"}
)

// Validate checks the meaning of a config whose defaults are applied, as
// Load returns it, and returns every problem together as Errors, each
// located by Pos; nil when there is none.
func (c *Config) Validate() error {
	if errs := c.check(); len(errs) > 0 {
		sortErrors(errs)
		return errs
	}
	return nil
}

// checker collects the problems of one config.
type checker struct {
	c    *Config
	errs Errors
}

func (k *checker) errorf(path, format string, args ...any) {
	line, col := k.c.Pos(path)
	k.errs = append(k.errs, &Error{
		File: k.c.File, Line: line, Column: col, Field: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

func (c *Config) check() Errors {
	k := &checker{c: c}
	switch {
	case c.Node.Name == "" && c.given("node.name"):
		k.errorf("node.name", "must not be empty; leave the key out to use the hostname")
	case c.Node.Name == "":
		k.errorf("node.name", "required: the default, the hostname, is unavailable")
	case !nameRE.MatchString(c.Node.Name):
		k.errorf("node.name", "invalid name %q: want letters, digits, '_', '.' and '-', starting with a letter or digit", c.Node.Name)
	}
	if c.Admin.Listen != "off" {
		k.addr("admin.listen", c.Admin.Listen, `ip:port or "off"`, true)
	}
	c.Admin.Token = string(k.secret("admin.token_file", c.Admin.TokenFile))
	k.oneOf("log.level", c.Log.Level, logLevels)
	k.oneOf("log.format", c.Log.Format, logFormats)
	if c.Shutdown.DrainTimeout < 0 {
		k.errorf("shutdown.drain_timeout", "want a non-negative duration, got %s", c.Shutdown.DrainTimeout)
	}
	if len(c.Services) == 0 {
		k.errorf("services", "no services; define at least one")
	}
	names := map[string]int{}
	listens := map[string]int{}
	for i := range c.Services {
		k.forwarding(i)
		k.service(i, names, listens)
		k.health(i)
		k.http(i)
	}
	k.allPorts()
	k.persistGroups()
	k.alerts()
	k.ha()
	k.director()
	return k.errs
}

// minSecret is the shortest admin token and HA auth key accepted.
const minSecret = 16

// secret reads the secret in the file named at path (admin.token_file,
// auth_key_file): its content without surrounding white space, at least
// minSecret bytes long. nil when no file is named or on error.
func (k *checker) secret(path, name string) []byte {
	if name == "" {
		return nil
	}
	b, ok := k.readFile(path, name)
	if !ok {
		return nil
	}
	b = bytes.TrimSpace(b)
	if n := len(b); n < minSecret {
		k.errorf(path, "%s holds %d bytes; want a secret of at least %d", name, n, minSecret)
		return nil
	}
	return b
}

// service checks services[i]. names and listens map the names and
// protocol+listen addresses of earlier services to their index.
func (k *checker) service(i int, names, listens map[string]int) {
	s := &k.c.Services[i]
	p := "services[" + strconv.Itoa(i) + "]"

	k.uniqueName(p+".name", s.Name, "service", "services", i, names)

	protoOK := k.oneOf(p+".protocol", s.Protocol, protocols)
	if ap, ok := k.listen(p+".listen", s); ok && protoOK {
		// http listens on a TCP socket: it shares the tcp services' space,
		// as do the director's services, which take the VIP's packets
		// before any socket sees them.
		key := network(s) + " " + netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		if first, dup := listens[key]; dup {
			o := &k.c.Services[first]
			if o.InKernel() || s.InKernel() {
				k.errorf(p+".listen", "%s %s is already used by services[%d] (%q, %s): a packet to it goes one way only", network(s), s.Listen, first, o.Name, describeForwarding(o))
			} else {
				k.errorf(p+".listen", "%s %s is already used by services[%d] (%q)", network(s), s.Listen, first, o.Name)
			}
		} else {
			listens[key] = i
		}
	}

	if !s.InKernel() {
		// forwarding checks a director service's.
		k.scheduler(p+".scheduler", s.Scheduler)
	}

	if ps := s.Persistence; ps != nil {
		pp := p + ".persistence"
		if ps.Timeout <= 0 {
			k.errorf(pp+".timeout", "want a duration above 0, got %s", ps.Timeout)
		}
		k.intRange(pp+".netmask", ps.Netmask, 0, 32)
		k.intRange(pp+".netmask6", ps.Netmask6, 0, 128)
		if ps.MaxEntries < minPersistEntries {
			k.errorf(pp+".max_entries", "want at least %d, got %d", minPersistEntries, ps.MaxEntries)
		}
	}

	k.backends(p+".backends", s.Backends, s.InKernel())
	if s.Fallback != "" {
		k.backendAddr(p+".fallback", s.Fallback, s.InKernel())
	}
	if s.InKernel() {
		// The proxy's keys are unset (forwarding refuses them if given).
		if s.HashPort && !slices.Contains(portHashing, s.Scheduler) {
			k.errorf(p+".hash_port", "scheduler %s hashes no client address; hash_port goes with %s", s.Scheduler, strings.Join(portHashing, ", "))
		}
		return
	}
	if s.Retries != nil {
		k.intRange(p+".retries", *s.Retries, 0, maxRetries)
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{
		{"connect", s.Timeouts.Connect},
		{"idle", s.Timeouts.Idle},
		{"proxy_header", s.Timeouts.ProxyHeader},
	} {
		if t.d <= 0 {
			k.errorf(p+".timeouts."+t.key, "want a duration above 0, got %s", t.d)
		}
	}
	k.oneOf(p+".proxy_protocol.send", s.ProxyProtocol.Send, proxySends)
	if protoOK && s.Protocol != ProtoTCP && (s.ProxyProtocol.Send != "" || s.ProxyProtocol.Accept) {
		k.errorf(p+".proxy_protocol", "the PROXY protocol is supported on tcp services only, not %s", s.Protocol)
	}
	if s.MaxSessions < 1 {
		k.errorf(p+".max_sessions", "want at least 1, got %d", s.MaxSessions)
	}
	if s.HashPort && protoOK && s.Protocol == ProtoHTTP {
		k.errorf(p+".hash_port", "hash_port is for tcp and udp services, not %s", s.Protocol)
	} else if s.HashPort && !slices.Contains(portHashing, s.Scheduler) {
		k.errorf(p+".hash_port", "scheduler %s hashes no client address; hash_port goes with %s", s.Scheduler, strings.Join(portHashing, ", "))
	}
	if s.MaxSessionsPerClient < 1 {
		k.errorf(p+".max_sessions_per_client", "want at least 1, got %d", s.MaxSessionsPerClient)
	}
}

// network is the socket type whose address space s's listen is in.
func network(s *Service) string {
	if s.Protocol == ProtoHTTP {
		return ProtoTCP
	}
	return s.Protocol
}

// listen checks the listen address of s: ip:port; for a director
// service the port may be 0 (all ports) and the ip must be one address,
// the VIP.
func (k *checker) listen(path string, s *Service) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s.Listen)
	switch {
	case err != nil:
	case s.InKernel() && ap.Addr().IsUnspecified():
		k.errorf(path, "want the VIP's ip:port: forwarding %s matches packets to one address, got %q", s.Forwarding, s.Listen)
		return netip.AddrPort{}, false
	case s.InKernel():
		return ap, true
	case ap.Port() == 0:
		k.errorf(path, "want ip:port with a port of 1-65535, got %q (port 0, all ports, is for forwarding direct or tunnel)", s.Listen)
		return netip.AddrPort{}, false
	}
	return k.addr(path, s.Listen, "ip:port", true)
}

// allPorts checks that no service of the proxy listens on the VIP of a
// director service of all ports (port 0) and the same protocol: the
// director would take its packets.
func (k *checker) allPorts() {
	for i := range k.c.Services {
		s := &k.c.Services[i]
		a, err := netip.ParseAddrPort(s.Listen)
		if !s.InKernel() || err != nil || a.Port() != 0 {
			continue
		}
		for j := range k.c.Services {
			o := &k.c.Services[j]
			b, err := netip.ParseAddrPort(o.Listen)
			if o.InKernel() || err != nil || network(o) != network(s) || b.Addr().Unmap() != a.Addr().Unmap() {
				continue
			}
			k.errorf("services["+strconv.Itoa(j)+"].listen", "%s %s is on the VIP of services[%d] (%q), whose forwarding %s takes all the VIP's ports: the proxy would never see a packet; give %q a port or move this service", network(o), o.Listen, i, s.Name, s.Forwarding, s.Name)
		}
	}
}

// portHashing are the schedulers that hash the client address, and so
// the port too with hash_port.
var portHashing = []string{"sh", "mh", "maglev"}

// scheduler checks that name is a scheduler built into the binary.
func (k *checker) scheduler(path, name string) {
	names := sched.Names()
	if slices.Contains(names, name) {
		return
	}
	msg := fmt.Sprintf("unknown scheduler %q", name)
	if sg := suggest(name, names); sg != "" {
		msg += fmt.Sprintf(", did you mean %q?", sg)
	} else {
		msg += "; want one of " + strings.Join(names, ", ")
	}
	k.errorf(path, "%s", msg)
}

// backends checks a list of backends at path: at least one, with distinct
// addresses.
//
// A director service's backends may have port 0, which only a port-0
// service accepts (forwarding checks that).
func (k *checker) backends(path string, backends []Backend, inKernel bool) {
	if len(backends) == 0 {
		k.errorf(path, "at least one backend is required")
	}
	addrs := map[netip.AddrPort]int{}
	for j := range backends {
		b := &backends[j]
		bp := path + "[" + strconv.Itoa(j) + "]"
		if ap, ok := k.backendAddr(bp+".address", b.Address, inKernel); ok {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			if first, dup := addrs[ap]; dup {
				k.errorf(bp+".address", "duplicate backend %s, first at backends[%d]", b.Address, first)
			} else {
				addrs[ap] = j
			}
		}
		k.intRange(bp+".weight", b.WeightValue(), 0, maxWeight)
		if b.MaxConnections < 0 {
			k.errorf(bp+".max_connections", "want 0 (no limit) or more, got %d", b.MaxConnections)
		}
	}
}

// backendAddr checks the ip:port of a backend or fallback; port 0 is
// valid for a director service's (of a port-0 service, which forwarding
// checks).
func (k *checker) backendAddr(path, s string, inKernel bool) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); inKernel && err == nil && ap.Port() == 0 && !ap.Addr().IsUnspecified() {
		return ap, true
	}
	return k.addr(path, s, "ip:port", false)
}

// uniqueName checks the name of list[i] (a service, an ha group): given,
// well formed, and not used by an earlier entry of names, where it is
// then recorded.
func (k *checker) uniqueName(path, name, what, list string, i int, names map[string]int) {
	switch first, dup := names[name]; {
	case name == "":
		k.errorf(path, "required")
	case !nameRE.MatchString(name):
		k.errorf(path, "invalid name %q: want letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	case dup:
		k.errorf(path, "duplicate %s name %q, first used by %s[%d]", what, name, list, first)
	default:
		names[name] = i
	}
}

// addr checks that s is a literal ip:port. Hostnames are refused: the
// balancer must not depend on DNS to start, and a name resolving
// differently on two nodes would split the cluster. unspecified allows
// 0.0.0.0 and [::], which make sense for a listener only. want names what
// is expected in messages.
func (k *checker) addr(path, s, want string, unspecified bool) (netip.AddrPort, bool) {
	if s == "" {
		k.errorf(path, "required; want %s", want)
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		host, port, serr := net.SplitHostPort(s)
		switch {
		case serr != nil:
			k.errorf(path, "want %s like 192.0.2.1:80 or [2001:db8::1]:80, got %q", want, s)
		case !validIP(host):
			k.errorf(path, "want %s, got %q: hostnames are not resolved, use a literal IP address", want, s)
		case !validPort(port):
			k.errorf(path, "want %s with a port of 1-65535, got %q", want, s)
		default:
			k.errorf(path, "want %s, got %q", want, s)
		}
		return netip.AddrPort{}, false
	}
	if ap.Port() == 0 {
		k.errorf(path, "want %s with a port of 1-65535, got %q", want, s)
		return netip.AddrPort{}, false
	}
	if !unspecified && ap.Addr().IsUnspecified() {
		k.errorf(path, "want the ip:port of one host, got %q", s)
		return netip.AddrPort{}, false
	}
	return ap, true
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// oneOf checks that v is one of allowed and reports whether it is.
func (k *checker) oneOf(path, v string, allowed []string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	// Enum values are short; below three letters any other value is "close".
	if sg := suggest(v, allowed); sg != "" && len(v) >= 3 {
		k.errorf(path, "unknown value %q, did you mean %q?", v, sg)
		return false
	}
	var want []string
	for _, a := range allowed {
		if a != "" {
			want = append(want, strconv.Quote(a))
		}
	}
	if slices.Contains(allowed, "") {
		want = append(want, "nothing")
	}
	k.errorf(path, "unknown value %q; want %s", v, orList(want))
	return false
}

func (k *checker) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		k.errorf(path, "want %d-%d, got %d", lo, hi, v)
	}
}

// orList joins ["a", "b", "c"] as "a, b or c".
func orList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
