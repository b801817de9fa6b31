package config

import (
	"os"
	"strconv"
	"time"
)

// Defaults, documented in docs/config.md.
const (
	defaultAdminListen       = "127.0.0.1:9900"
	defaultLogLevel          = "info"
	defaultLogFormat         = "text"
	defaultDrainTimeout      = 30 * time.Second
	defaultProtocol          = ProtoTCP
	defaultScheduler         = "wlc" // as ipvsadm
	defaultRetries           = 2
	defaultConnectTimeout    = 5 * time.Second
	defaultIdleTimeoutTCP    = 15 * time.Minute // IPVS's established timeout
	defaultIdleTimeoutUDP    = 60 * time.Second
	defaultProxyHeader       = 5 * time.Second
	defaultMaxSessions       = 65536
	defaultMaxPerClient      = 1024
	defaultWeight            = 1
	defaultPersistTimeout    = 360 * time.Second // ipvsadm -p
	defaultPersistNetmask    = 32
	defaultPersistNetmask6   = 128
	defaultPersistMaxEntries = 1 << 20
)

// applyDefaults fills every setting the file left out. It is the only place
// defaults live, so that the effective config (Marshal) shows all of them.
//
// A value the file gave is kept even when it is zero (retries: 0,
// netmask: 0, drain_timeout: 0s); Validate then judges it. Without
// positions, as for a Config built in code, zero means "left out".
// Applying defaults twice changes nothing.
func (c *Config) applyDefaults() {
	if !c.given("node.name") && c.Node.Name == "" {
		// Left empty if the hostname is unavailable; Validate asks for a name.
		c.Node.Name, _ = os.Hostname()
	}
	defaultTo(c, &c.Admin.Listen, "admin.listen", defaultAdminListen)
	c.Admin.TokenFile = c.FilePath(c.Admin.TokenFile)
	defaultTo(c, &c.Log.Level, "log.level", defaultLogLevel)
	defaultTo(c, &c.Log.Format, "log.format", defaultLogFormat)
	defaultTo(c, &c.Shutdown.DrainTimeout, "shutdown.drain_timeout", Duration(defaultDrainTimeout))
	c.alertDefaults()
	c.haDefaults()
	for i := range c.Services {
		s := &c.Services[i]
		p := "services[" + strconv.Itoa(i) + "]"
		defaultTo(c, &s.Protocol, p+".protocol", defaultProtocol)
		normalizeForwarding(s)
		if s.InKernel() {
			// The proxy's keys stay unset: Validate refuses them.
			c.kernelServiceDefaults(s, p)
		} else {
			c.proxyDefaults(s, p)
		}
		for j := range s.Backends {
			if s.Backends[j].Weight == nil {
				s.Backends[j].Weight = ptr(defaultWeight)
			}
			if h := s.Backends[j].Health; h != nil {
				h.normalize()
			}
		}
		if s.Health != nil {
			c.healthDefaults(s.Health, p+".health")
		}
		if s.Quiescent == nil {
			// Spelled out so that the effective config shows it.
			s.Quiescent = ptr(true)
		}
		defaultTo(c, &s.RemovalGrace, p+".removal_grace", Duration(defaultRemovalGrace))
		if s.Protocol == ProtoHTTP {
			c.httpDefaults(s, p)
		}
		if ps := s.Persistence; ps != nil {
			pp := p + ".persistence"
			defaultTo(c, &ps.Timeout, pp+".timeout", Duration(defaultPersistTimeout))
			defaultTo(c, &ps.Netmask, pp+".netmask", defaultPersistNetmask)
			defaultTo(c, &ps.Netmask6, pp+".netmask6", defaultPersistNetmask6)
			defaultTo(c, &ps.MaxEntries, pp+".max_entries", defaultPersistMaxEntries)
		}
	}
	c.directorDefaults() // after the services, whose forwarding it needs
}

// proxyDefaults fills the keys only a proxied service has.
func (c *Config) proxyDefaults(s *Service, p string) {
	defaultTo(c, &s.Scheduler, p+".scheduler", defaultScheduler)
	if s.Retries == nil {
		s.Retries = ptr(defaultRetries)
	}
	idle := defaultIdleTimeoutTCP
	if s.Protocol == ProtoUDP {
		idle = defaultIdleTimeoutUDP
	}
	defaultTo(c, &s.Timeouts.Connect, p+".timeouts.connect", Duration(defaultConnectTimeout))
	defaultTo(c, &s.Timeouts.Idle, p+".timeouts.idle", Duration(idle))
	defaultTo(c, &s.Timeouts.ProxyHeader, p+".timeouts.proxy_header", Duration(defaultProxyHeader))
	defaultTo(c, &s.MaxSessions, p+".max_sessions", defaultMaxSessions)
	defaultTo(c, &s.MaxSessionsPerClient, p+".max_sessions_per_client", defaultMaxPerClient)
}

// defaultTo sets *v to def when it is zero and the file did not give it.
func defaultTo[T comparable](c *Config, v *T, path string, def T) {
	var zero T
	if *v == zero && !c.given(path) {
		*v = def
	}
}

func ptr[T any](v T) *T { return &v }
