// Package config holds fulcrum's configuration schema, loads it strictly
// from YAML (unknown keys are errors, every error carries file:line and the
// field path, all errors are reported together), fills in defaults and
// validates it.
//
// A *Config returned by Load is complete and valid; callers treat it as
// immutable and build their runtime state from it.
package config

import (
	"net/netip"
	"time"
)

// Config is one fulcrum configuration file, identical on every balancer
// node except for node.name.
type Config struct {
	Node     Node      `yaml:"node"`
	Admin    Admin     `yaml:"admin"`
	Log      Log       `yaml:"log"`
	Shutdown Shutdown  `yaml:"shutdown"`
	Services []Service `yaml:"services"`

	// File is the path the config was loaded from ("" for inline data).
	File string `yaml:"-"`
}

// Node is this balancer node's identity.
type Node struct {
	// Name defaults to the hostname.
	Name string `yaml:"name"`
}

// Admin configures the JSON API, /metrics and the dashboard.
type Admin struct {
	// Listen is host:port; default 127.0.0.1:9900. "off" disables it.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token required for mutations.
	TokenFile string `yaml:"token_file"`
}

// Log configures log/slog output on stderr.
type Log struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Format string `yaml:"format"` // text (default) | json
}

// Shutdown configures SIGTERM handling.
type Shutdown struct {
	// DrainTimeout bounds how long established connections may finish after
	// the listeners close; default 30s.
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
	Name string `yaml:"name"`
	// Listen is ip:port ("[::1]:80" for IPv6). The ip may be a VIP this node
	// does not hold yet.
	Listen string `yaml:"listen"`
	// Protocol is tcp (default), udp or http.
	Protocol string `yaml:"protocol"`
	// Scheduler is one of sched.Names(); default wlc, as ipvsadm.
	Scheduler   string       `yaml:"scheduler"`
	Persistence *Persistence `yaml:"persistence"`
	Backends    []Backend    `yaml:"backends"`
	// Fallback is ip:port of a sorry server used when no backend (primary or
	// backup) is available; ldirectord's fallback=.
	Fallback string `yaml:"fallback"`
	// Retries is how many other backends a TCP connection tries after a
	// failed connect; default 2.
	Retries       *int          `yaml:"retries"`
	Timeouts      Timeouts      `yaml:"timeouts"`
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol"`
	// MaxSessions bounds the UDP session table; default 65536.
	MaxSessions int `yaml:"max_sessions"`
}

// Timeouts of a service; zero values are replaced by defaults.
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
	// Weight defaults to 1; 0 accepts no new connections (ipvsadm -w 0).
	Weight *int `yaml:"weight"`
	// MaxConnections limits connections in flight; 0 means no limit.
	MaxConnections int `yaml:"max_connections"`
	// Backup backends take traffic only when no primary is available.
	Backup bool `yaml:"backup"`
}

// Persistence pins a client (its masked address) to a backend, like
// ipvsadm -p TIMEOUT -M NETMASK.
type Persistence struct {
	// Timeout after the client's last connection; default 360s.
	Timeout Duration `yaml:"timeout"`
	// Netmask is the IPv4 prefix length grouping clients; default 32.
	Netmask int `yaml:"netmask"`
	// Netmask6 is the IPv6 prefix length; default 128.
	Netmask6 int `yaml:"netmask6"`
	// MaxEntries bounds the table; default 1048576. When full the oldest
	// entries of a shard are evicted first.
	MaxEntries int `yaml:"max_entries"`
}

// Duration is a time.Duration that reads "250ms", "2s", "1h30m" or a bare
// number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ListenAddr returns the parsed listen address. Valid only after Load.
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
