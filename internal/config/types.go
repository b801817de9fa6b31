// Package config holds fulcrum's configuration schema, loads it strictly
// from YAML (unknown keys are errors, every error carries file:line:column
// and the field path, all errors are reported together), fills in defaults
// and validates it. docs/config.md describes every key.
//
// A *Config returned by Load is complete and valid; callers treat it as
// immutable and build their runtime state from it.
//
// Defaults apply to keys the file leaves out (or sets to null). A value the
// file gives is kept even when it is zero, so "retries: 0" and
// "netmask: 0" mean what they say.
package config

import (
	"net/netip"
	"strings"
	"time"
)

// Config is one fulcrum configuration file, identical on every balancer
// node except for node.name.
//
// It remembers where each value was in the file (see Pos); compare two
// Configs with Hash, or with cmpopts.IgnoreUnexported(Config{}).
type Config struct {
	Node     Node     `yaml:"node"`
	Admin    Admin    `yaml:"admin"`
	Log      Log      `yaml:"log"`
	Shutdown Shutdown `yaml:"shutdown"`
	// Autoreload watches this file and reloads it when it changes, like
	// ldirectord's autoreload=yes; default false (SIGHUP or `fulcrum
	// reload` only). An invalid file is rejected as on SIGHUP.
	Autoreload bool      `yaml:"autoreload"`
	Services   []Service `yaml:"services"`
	// Alerts are hooks run on every event (a backend going up or down).
	Alerts []Alert `yaml:"alerts,omitempty"`
	// HA moves virtual IPs between balancer nodes with VRRP.
	HA HA `yaml:"ha,omitempty"`
	// Director configures this node's kernel data plane, which forwards
	// the packets of services with forwarding direct or tunnel (see
	// docs/director.md).
	Director Director `yaml:"director,omitempty"`

	// File is the path the config was loaded from ("" for inline data).
	File string `yaml:"-"`

	// pos is where each value given in the file starts, by field path; see
	// Pos.
	pos map[string]position
}

// Node is this balancer node's identity.
type Node struct {
	// Name identifies this node to its peers; default the hostname. Letters,
	// digits, '_', '.' and '-'.
	Name string `yaml:"name"`
}

// Admin configures the JSON API, /metrics and the dashboard.
type Admin struct {
	// Listen is a literal ip:port; default 127.0.0.1:9900. "off" disables
	// the admin server.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token required for mutations; a relative
	// path is taken relative to the config file's directory.
	TokenFile string `yaml:"token_file"`
	// Token is TokenFile's content without surrounding white space, read
	// and checked (at least 16 characters) by Load.
	Token string `yaml:"-" json:"-"`
}

// Log configures log/slog output on stderr.
type Log struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Format string `yaml:"format"` // text (default) | json
}

// Shutdown configures SIGTERM handling.
type Shutdown struct {
	// DrainTimeout bounds how long established connections may finish after
	// the listeners close; default 30s. 0s closes them at once.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// Protocols a service may use.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoHTTP = "http"
)

// Service is one virtual service: a listen address and its backends.
type Service struct {
	// Name is required and unique: letters, digits, '_', '.' and '-',
	// starting with a letter or digit.
	Name string `yaml:"name"`
	// Listen is a literal ip:port ("[::1]:80" for IPv6). The ip may be a VIP
	// this node does not hold yet. No two services of the same protocol
	// share one. Port 0 (director modes only) takes every port of the VIP
	// that no other service of the protocol names.
	Listen string `yaml:"listen"`
	// Protocol is tcp (default), udp or http (proxy only).
	Protocol string `yaml:"protocol"`
	// Forwarding is how packets reach the backends: proxy (default;
	// fulcrum's user-space proxy), direct (LVS direct routing, ipvsadm's
	// gate; also spelt gate, dr or droute) or tunnel (IP-in-IP; also spelt
	// ipip or tun). Load normalises the spelling to proxy, direct or
	// tunnel. NAT (masq) is not offered.
	Forwarding string `yaml:"forwarding,omitempty"` // omitempty: see Hash
	// Scheduler is one of sched.Names(): IPVS's rr, wrr, lc, wlc, sed, nq,
	// sh, dh, lblc, lblcr, fo, ovf, mh and twos, and p2c, maglev and
	// random; default wlc, as ipvsadm. Services with forwarding direct or
	// tunnel take rr, wrr, maglev (their default), sh or mh.
	Scheduler string `yaml:"scheduler"`
	// Persistence, when present, pins clients to backends; nil (the key
	// left out) means none.
	Persistence *Persistence `yaml:"persistence"`
	// Backends are the real servers; at least one, with distinct addresses.
	Backends []Backend `yaml:"backends"`
	// Fallback is ip:port of a sorry server used when no backend (primary or
	// backup) is available; ldirectord's fallback=. "" means none.
	Fallback string `yaml:"fallback"`
	// Retries is how many other backends a TCP connection tries after a
	// failed connect, 0-16; default 2. A pointer so that 0 can be given.
	// Proxy only, as are timeouts, proxy_protocol and the max_sessions
	// keys: the effective config of a director service leaves them out.
	Retries  *int     `yaml:"retries"`
	Timeouts Timeouts `yaml:"timeouts"`
	// ProxyProtocol is valid on tcp services only.
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol"`
	// MaxSessions bounds the UDP session table, at least 1; default 65536.
	// A new client arriving at a full table evicts the least recently
	// active session.
	MaxSessions int `yaml:"max_sessions"`
	// MaxSessionsPerClient bounds the UDP sessions of one client address
	// (all its ports), at least 1; default 1024. A client at its limit that
	// opens another evicts its own least recently active session.
	MaxSessionsPerClient int `yaml:"max_sessions_per_client"`
	// HashPort makes sh, mh and maglev hash the client's port with its
	// address, as IPVS's sh-port and mh-port flags do, so that one
	// address's connections spread over the backends; tcp and udp
	// services.
	HashPort bool `yaml:"hash_port,omitempty"`
	// Health configures active (and passive) checks; nil means none: every
	// backend counts as up.
	Health *Health `yaml:"health,omitempty"`
	// Quiescent: a backend that goes down keeps its established
	// connections and only gets no new ones (true, default; ldirectord's
	// quiescent=yes). false removes it: its connections are closed after
	// RemovalGrace.
	Quiescent *bool `yaml:"quiescent,omitempty"`
	// RemovalGrace is how long a removed (down, non-quiescent) backend's
	// connections may continue; default 10s.
	RemovalGrace Duration `yaml:"removal_grace"`
	// HTTP configures a protocol: http service; nil for others. Defaults
	// fill it in for every http service.
	HTTP *HTTP `yaml:"http,omitempty"`
	// SlowStart ramps a recovered backend's weight up from near 0 to its
	// full weight over this time; 0 (default) gives it full weight at once.
	SlowStart Duration `yaml:"slow_start"`
}

// Timeouts of a service; each one left out takes its default, and each
// must be above 0.
type Timeouts struct {
	// Connect bounds a TCP connect to a backend; default 5s.
	Connect Duration `yaml:"connect"`
	// Idle closes a TCP connection after no bytes moved in either direction
	// for this long (default 15m, IPVS's established timeout), or expires a
	// UDP session (default 60s).
	Idle Duration `yaml:"idle"`
	// ProxyHeader bounds reading an inbound PROXY header; default 5s.
	ProxyHeader Duration `yaml:"proxy_header"`
}

// ProxyProtocol configures the HAProxy PROXY protocol on a TCP service.
type ProxyProtocol struct {
	// Send is "" (off), "v1" or "v2": prepend a PROXY header on every
	// connection to a backend so it sees the client address.
	Send string `yaml:"send"`
	// Accept requires a PROXY header (v1 or v2) from the client side, as
	// sent by a front balancer; its source address becomes the client.
	Accept bool `yaml:"accept"`
}

// Backend is one real server of a service.
type Backend struct {
	// Address is ip:port.
	Address string `yaml:"address"`
	// Weight is 0-65535; default 1. 0 accepts no new connections
	// (ipvsadm -w 0). A pointer so that 0 can be given.
	Weight *int `yaml:"weight"`
	// MaxConnections limits connections in flight; 0 (default) means no
	// limit.
	MaxConnections int `yaml:"max_connections"`
	// Backup backends take traffic only when no primary is available.
	Backup bool `yaml:"backup"`
	// Health adjusts the service's health check for this backend: each
	// key given replaces the service's.
	Health *Health `yaml:"health,omitempty"`
}

// Persistence pins a client (its masked address) to a backend, like
// ipvsadm -p TIMEOUT -M NETMASK.
type Persistence struct {
	// Timeout after the client's last connection, above 0; default 360s.
	Timeout Duration `yaml:"timeout"`
	// Netmask is the IPv4 prefix length grouping clients, 0-32; default 32.
	Netmask int `yaml:"netmask"`
	// Netmask6 is the IPv6 prefix length, 0-128; default 128.
	Netmask6 int `yaml:"netmask6"`
	// MaxEntries bounds the table, at least 64; default 1048576. When full
	// the oldest entries of a shard are evicted first.
	MaxEntries int `yaml:"max_entries"`
	// Group (director modes): the services of one VIP that name the same
	// group share one persistence table, so a client keeps its backend
	// across their ports (ipvsadm -f's firewall-mark services: 80 and 443
	// of one shop). Its services must agree on timeout and netmasks.
	Group string `yaml:"group,omitempty"`
}

// Duration is a time.Duration that reads "250ms", "2s", "1h30m" or a bare
// number of seconds. Negative durations are refused.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does, without the trailing zero units
// that make 15m read "15m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalYAML writes d as a duration string, which the decoder reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Forwarding modes of a service, as Load normalises them.
const (
	ForwardProxy  = "proxy"
	ForwardDirect = "direct"
	ForwardTunnel = "tunnel"
)

// InKernel reports whether s is forwarded by the director's kernel data
// plane (forwarding direct or tunnel) rather than proxied: it has no
// socket of its own.
func (s *Service) InKernel() bool {
	return s.Forwarding == ForwardDirect || s.Forwarding == ForwardTunnel
}

// ListenAddr returns the parsed listen address. It panics unless s was
// validated, as every service of a Config from Load or Parse is.
func (s *Service) ListenAddr() netip.AddrPort { return netip.MustParseAddrPort(s.Listen) }

// RetryCount returns the number of retries after defaults.
func (s *Service) RetryCount() int {
	if s.Retries == nil {
		return 0
	}
	return *s.Retries
}

// WeightValue returns the backend's configured weight after defaults.
func (b *Backend) WeightValue() int {
	if b.Weight == nil {
		return 1
	}
	return *b.Weight
}
