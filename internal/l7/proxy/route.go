package proxy

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// snapshot is a Config compiled for the data plane: defaults applied,
// routes ready to match against bytes, error pages and cookie lines
// pre-rendered, and the upstream pool of every backend at hand. A request
// loads it once.
type snapshot struct {
	cfg  *Config
	log  *slog.Logger
	name string

	routes []route
	def    route

	fw  http1.Forwarding // flags only; Client and TLS are set per connection
	lim http1.Limits

	headerTimeout, idleTimeout, bodyTimeout time.Duration
	connectTimeout, responseTimeout         time.Duration
	maxIdle, retries                        int

	pages     [3][]byte // bodies of 502, 503, 504
	pageTypes [3]string

	cookie    *Cookie
	pools     map[*balancer.Backend]*hostPool
	tls       *tls.Config
	accessLog func(*Entry)
}

// route is a compiled Route. host is "" for any host; for a wildcard it
// is the suffix, leading dot included.
type route struct {
	host     string
	wildcard bool
	prefix   string
	svc      *balancer.Service
	// cookies maps the cookie ids of svc's backends to them; a handful of
	// backends is scanned faster than a map is hashed.
	cookies []cookieID
}

func (p *Proxy) compile(cfg *Config) *snapshot {
	s := &snapshot{
		cfg:             cfg,
		log:             cfg.Log,
		name:            cfg.Name,
		lim:             cfg.Limits,
		headerTimeout:   orDefault(cfg.HeaderTimeout, DefaultHeaderTimeout),
		idleTimeout:     orDefault(cfg.IdleTimeout, DefaultIdleTimeout),
		bodyTimeout:     orDefault(cfg.BodyTimeout, DefaultBodyTimeout),
		connectTimeout:  orDefault(cfg.ConnectTimeout, DefaultConnectTimeout),
		responseTimeout: orDefault(cfg.ResponseTimeout, DefaultResponseTimeout),
		maxIdle:         cfg.MaxIdlePerBackend,
		retries:         max(cfg.Retries, 0),
		cookie:          cfg.Cookie,
		pools:           map[*balancer.Backend]*hostPool{},
		accessLog:       cfg.AccessLog,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxIdle <= 0 {
		s.maxIdle = DefaultMaxIdlePerBackend
	}
	s.fw = http1.Forwarding{
		XForwardedFor:   cfg.Forward.XForwardedFor,
		XForwardedProto: cfg.Forward.XForwardedProto,
		XForwardedHost:  cfg.Forward.XForwardedHost,
		Forwarded:       cfg.Forward.Forwarded,
		RealIP:          cfg.Forward.XRealIP,
	}
	for i, code := range [3]int{502, 503, 504} {
		if page, ok := cfg.ErrorPages[code]; ok {
			s.pages[i], s.pageTypes[i] = page, "text/html; charset=utf-8"
		} else {
			s.pages[i], s.pageTypes[i] = []byte(builtinPage(code)), "text/plain; charset=utf-8"
		}
	}
	if cfg.TLS != nil {
		t := cfg.TLS.Clone()
		if len(t.NextProtos) == 0 {
			t.NextProtos = []string{"h2", "http/1.1"}
		}
		s.tls = t
	}

	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	compileRoute := func(r *route, svc *balancer.Service) {
		r.svc = svc
		if svc == nil {
			return
		}
		for _, bs := range [][]*balancer.Backend{svc.Primary(), svc.Backup()} {
			for _, b := range bs {
				p.poolLocked(s, b)
				if cfg.Cookie != nil {
					r.cookies = append(r.cookies, newCookieID(cfg.Cookie, b))
				}
			}
		}
		if fb := svc.Fallback(); fb != nil {
			p.poolLocked(s, fb)
		}
	}
	for _, rt := range cfg.Routes {
		r := route{prefix: rt.PathPrefix}
		host := strings.ToLower(rt.Host)
		if rest, ok := strings.CutPrefix(host, "*"); ok {
			r.host, r.wildcard = rest, true
		} else {
			r.host = host
		}
		compileRoute(&r, rt.Pool)
		s.routes = append(s.routes, r)
	}
	compileRoute(&s.def, cfg.Default)
	return s
}

// poolLocked returns b's pool, created on first sight, and records it in
// s. poolsMu must be held.
func (p *Proxy) poolLocked(s *snapshot, b *balancer.Backend) *hostPool {
	hp := p.pools[b]
	if hp == nil || hp.isRetired() {
		// A backend back in the configuration gets a fresh pool; the
		// retired one's connections end with their requests.
		hp = newHostPool(p, b)
		p.pools[b] = hp
	}
	s.pools[b] = hp
	return hp
}

// pool returns b's pool. Every backend of the snapshot's services has one;
// the slow path covers a backend the snapshot did not see, which a shared
// *balancer.Service changed behind the proxy's back could produce.
func (p *Proxy) pool(s *snapshot, b *balancer.Backend) *hostPool {
	if hp := s.pools[b]; hp != nil {
		return hp
	}
	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	hp := p.pools[b]
	if hp == nil {
		hp = newHostPool(p, b)
		p.pools[b] = hp
	}
	return hp
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// match returns the route for a request's host (as received: any case,
// maybe with a port) and path.
func (s *snapshot) match(host, path []byte) *route {
	if len(s.routes) == 0 {
		return &s.def
	}
	host = stripPort(host)
	for i := range s.routes {
		r := &s.routes[i]
		if r.host != "" {
			if r.wildcard {
				if len(host) <= len(r.host) || !equalFold(host[len(host)-len(r.host):], r.host) {
					continue
				}
			} else if !equalFold(host, r.host) {
				continue
			}
		}
		if len(path) < len(r.prefix) || string(path[:len(r.prefix)]) != r.prefix {
			continue
		}
		return r
	}
	return &s.def
}

// stripPort removes ":port" from a Host value, keeping an IPv6 literal's
// brackets.
func stripPort(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// equalFold compares b with s, which is lower case, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
