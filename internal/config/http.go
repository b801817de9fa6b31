package config

import (
	"crypto/sha256"
	"crypto/tls"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTP configures a protocol: http service: routing to pools by Host and
// path, cookie persistence, forwarding headers, limits, timeouts, error
// pages, the access log and TLS termination. docs/l7.md explains them.
type HTTP struct {
	// Routes send matching requests to their own pools; first match wins,
	// and a request matching none goes to the service's backends.
	Routes []Route `yaml:"routes,omitempty"`
	// Cookie, when present, pins a browser to its backend with a cookie.
	Cookie    *Cookie      `yaml:"cookie,omitempty"`
	Forwarded Forwarded    `yaml:"forwarded"`
	Limits    Limits       `yaml:"limits"`
	Timeouts  HTTPTimeouts `yaml:"timeouts"`
	// MaxIdlePerBackend bounds the reusable upstream connections kept per
	// backend; default 64.
	MaxIdlePerBackend int `yaml:"max_idle_per_backend"`
	// ErrorPages maps "502", "503" or "504" to a file whose content is the
	// body of that error; read when the config is loaded.
	ErrorPages map[string]string `yaml:"error_pages,omitempty"`
	// AccessLog, when present, writes one line per request.
	AccessLog *AccessLog `yaml:"access_log,omitempty"`
	// TLS, when present, terminates TLS on the listener.
	TLS *TLS `yaml:"tls,omitempty"`
	// Poller makes the HTTP/1.1 path's reads wait on fulcrum's own poller,
	// which serves requests in arrival order (docs/l7-engine.md); false
	// reads through Go's netpoller. Default true. The environment variable
	// FULCRUM_HTTP_POLLER=off turns it off for every service.
	Poller *bool `yaml:"poller"`

	// ErrorBodies holds the content of ErrorPages by status, read by
	// Validate so that what runs is what was checked.
	ErrorBodies map[int][]byte `yaml:"-"`
}

// Route is one routing rule of an http service, like HAProxy's
// use_backend with a host and path condition.
type Route struct {
	// Name identifies the route's pool in status, logs and metrics as
	// SERVICE/NAME, and keeps its backends' state across reloads; default
	// route<i> (its index).
	Name string `yaml:"name"`
	// Host is "" (any), an exact host ("api.example.com") or a suffix
	// wildcard ("*.example.com"); compared without the port, ignoring case.
	Host string `yaml:"host"`
	// PathPrefix is "" (any) or a prefix starting with "/".
	PathPrefix string `yaml:"path_prefix"`
	// Scheduler defaults to the service's.
	Scheduler string `yaml:"scheduler"`
	// Backends have the schema of a service's; at least one.
	Backends []Backend `yaml:"backends"`
}

// Cookie configures cookie persistence (HAProxy's cookie SRV insert).
type Cookie struct {
	// Name of the cookie; default FULCRUM_SRV.
	Name string `yaml:"name"`
	// MaxAge of the cookie; 0 (default) makes it a session cookie.
	MaxAge Duration `yaml:"max_age"`
	// Secure adds the Secure attribute (HTTPS only); default false.
	Secure bool `yaml:"secure"`
	// HTTPOnly adds the HttpOnly attribute (hidden from scripts); default
	// true.
	HTTPOnly *bool `yaml:"http_only"`
	// Secret keys the opaque backend ids; see CookieKey. Any string,
	// identical on every node.
	Secret string `yaml:"secret"`
}

// Forwarded selects the headers that tell backends about the client.
type Forwarded struct {
	// XForwardedFor appends the client's address to X-Forwarded-For
	// (HAProxy's option forwardfor); default true.
	XForwardedFor *bool `yaml:"x_forwarded_for"`
	// XForwardedProto sets X-Forwarded-Proto to http or https; default
	// true.
	XForwardedProto *bool `yaml:"x_forwarded_proto"`
	// XForwardedHost sets X-Forwarded-Host to the Host the client asked
	// for; default true.
	XForwardedHost *bool `yaml:"x_forwarded_host"`
	// Forwarded appends an RFC 7239 Forwarded element; default false.
	Forwarded bool `yaml:"forwarded"`
	// XRealIP sets X-Real-IP to the client's address; default false.
	XRealIP bool `yaml:"x_real_ip"`
}

// Limits bound a request head; longer or larger requests get 414 or 431.
type Limits struct {
	// MaxRequestLine bounds the request line, 64 to max_header_bytes;
	// longer gets 414. Default 8192.
	MaxRequestLine int `yaml:"max_request_line"`
	// MaxHeaderBytes bounds the whole request head, 256-1048576; larger
	// gets 431. Default 32768.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeaders bounds the number of header fields, 1-100; more gets
	// 431. Default 100.
	MaxHeaders int `yaml:"max_headers"`
}

// HTTPTimeouts of an http service; the connect timeout is the service's
// timeouts.connect.
type HTTPTimeouts struct {
	// Header bounds receiving a whole request head (slowloris); default 10s.
	Header Duration `yaml:"header"`
	// KeepAlive closes a client connection idle between requests for this
	// long; default 60s.
	KeepAlive Duration `yaml:"keep_alive"`
	// Body bounds the wait between two reads of a request or response
	// body; default 60s.
	Body Duration `yaml:"body"`
	// Response bounds the wait for a backend's response head once the
	// request is sent (then 504); default 60s.
	Response Duration `yaml:"response"`
}

// AccessLog configures the per-request log.
type AccessLog struct {
	// Path is a file (appended to, reopened on reload) or "stderr".
	Path string `yaml:"path"`
	// Format is common (default) or json.
	Format string `yaml:"format"`
}

// TLS terminates TLS on an http service's listener.
type TLS struct {
	// Certificates are tried by SNI: the one whose names match the
	// client's server name, else the first.
	Certificates []Certificate `yaml:"certificates"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// H2 offers HTTP/2 by ALPN; default true.
	H2 *bool `yaml:"h2"`
}

// Certificate is one certificate chain and its private key, PEM files.
type Certificate struct {
	// Cert is a PEM file: the certificate chain, leaf first.
	Cert string `yaml:"cert"`
	// Key is a PEM file: the leaf's private key.
	Key string `yaml:"key"`

	// CertPEM and KeyPEM are the files' content, read and checked by
	// Validate.
	CertPEM []byte `yaml:"-"`
	KeyPEM  []byte `yaml:"-"`
}

// HTTP defaults, documented in docs/config.md and docs/l7.md.
const (
	defaultCookieName        = "FULCRUM_SRV"
	defaultMaxRequestLine    = 8 << 10
	defaultMaxHeaderBytes    = 32 << 10
	defaultMaxHeaders        = 100
	defaultHeaderTimeout     = 10 * time.Second
	defaultKeepAliveTimeout  = 60 * time.Second
	defaultBodyTimeout       = 60 * time.Second
	defaultResponseTimeout   = 60 * time.Second
	defaultMaxIdlePerBackend = 1024
	defaultAccessLogFormat   = "common"
	defaultTLSMinVersion     = "1.2"
	// maxHeaders is http1.MaxFields: the parser holds at most that many.
	maxHeaders = 100
)

var (
	accessLogFormats = []string{"common", "json"}
	tlsVersions      = []string{"1.2", "1.3"}
	errorPageCodes   = []string{"502", "503", "504"}
	// cookieNameRE is RFC 6265's cookie-name: an HTTP token.
	cookieNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	// hostRE is a host name or an IP literal as it appears in Host,
	// optionally with a leading "*." for a suffix match.
	hostRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$`)
)

// TLSVersion returns the tls package's constant for MinVersion.
func (t *TLS) TLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// PollerValue reports whether the poller is on (the default).
func (h *HTTP) PollerValue() bool { return h.Poller == nil || *h.Poller }

// H2Value reports whether HTTP/2 is offered (the default).
func (t *TLS) H2Value() bool { return t.H2 == nil || *t.H2 }

// HTTPOnlyValue reports whether the cookie is HttpOnly (the default).
func (c *Cookie) HTTPOnlyValue() bool { return c.HTTPOnly == nil || *c.HTTPOnly }

// CookieKey is the key of service s's cookie ids: SHA-256 over a fixed
// label, the service name and cookie.secret. It depends on the config
// only, so every node of a cluster names a backend alike and a browser
// keeps its backend when the VIP moves. Without a secret the ids are
// still opaque, but someone knowing the scheme could test guesses of a
// backend's address against them; a secret prevents that.
func (s *Service) CookieKey() []byte {
	if s.HTTP == nil || s.HTTP.Cookie == nil {
		return nil
	}
	h := sha256.New()
	h.Write([]byte("fulcrum cookie v1\x00"))
	h.Write([]byte(s.Name))
	h.Write([]byte{0})
	h.Write([]byte(s.HTTP.Cookie.Secret))
	return h.Sum(nil)
}

// PoolName names route r of service s: "SERVICE/ROUTE". Service names
// cannot contain '/', so pool names never collide with service names.
func (s *Service) PoolName(r int) string { return s.Name + "/" + s.HTTP.Routes[r].Name }

// isPool reports whether name is an http route's pool, SERVICE/ROUTE.
func (c *Config) isPool(name string) bool {
	svc, route, ok := strings.Cut(name, "/")
	s := c.Service(svc)
	if !ok || s == nil || s.HTTP == nil || s.Protocol != ProtoHTTP {
		return false
	}
	for r := range s.HTTP.Routes {
		if s.HTTP.Routes[r].Name == route {
			return true
		}
	}
	return false
}

// FilePath resolves a file named in the config: a relative path is taken
// relative to the directory of the config file and made absolute, so that
// the effective config (Marshal) names the same files wherever it is
// written. Load does this for every file an http block names, for
// admin.token_file and for auth_key_file.
func (c *Config) FilePath(name string) string {
	if name == "" || filepath.IsAbs(name) || name == "stderr" {
		return name
	}
	if c.File != "" {
		name = filepath.Join(filepath.Dir(c.File), name)
	}
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}

// httpDefaults fills service s's http block; s is an http service.
func (c *Config) httpDefaults(s *Service, p string) {
	if s.HTTP == nil {
		s.HTTP = &HTTP{}
	}
	h := s.HTTP
	p += ".http"
	for i := range h.Routes {
		r := &h.Routes[i]
		rp := p + ".routes[" + strconv.Itoa(i) + "]"
		defaultTo(c, &r.Name, rp+".name", "route"+strconv.Itoa(i))
		defaultTo(c, &r.Scheduler, rp+".scheduler", s.Scheduler)
		for j := range r.Backends {
			if r.Backends[j].Weight == nil {
				r.Backends[j].Weight = ptr(defaultWeight)
			}
			if h := r.Backends[j].Health; h != nil {
				h.normalize()
			}
		}
	}
	if ck := h.Cookie; ck != nil {
		defaultTo(c, &ck.Name, p+".cookie.name", defaultCookieName)
		if ck.HTTPOnly == nil {
			ck.HTTPOnly = ptr(true)
		}
	}
	for _, b := range []**bool{&h.Forwarded.XForwardedFor, &h.Forwarded.XForwardedProto, &h.Forwarded.XForwardedHost, &h.Poller} {
		if *b == nil {
			*b = ptr(true)
		}
	}
	defaultTo(c, &h.Limits.MaxRequestLine, p+".limits.max_request_line", defaultMaxRequestLine)
	defaultTo(c, &h.Limits.MaxHeaderBytes, p+".limits.max_header_bytes", defaultMaxHeaderBytes)
	defaultTo(c, &h.Limits.MaxHeaders, p+".limits.max_headers", defaultMaxHeaders)
	defaultTo(c, &h.Timeouts.Header, p+".timeouts.header", Duration(defaultHeaderTimeout))
	defaultTo(c, &h.Timeouts.KeepAlive, p+".timeouts.keep_alive", Duration(defaultKeepAliveTimeout))
	defaultTo(c, &h.Timeouts.Body, p+".timeouts.body", Duration(defaultBodyTimeout))
	defaultTo(c, &h.Timeouts.Response, p+".timeouts.response", Duration(defaultResponseTimeout))
	defaultTo(c, &h.MaxIdlePerBackend, p+".max_idle_per_backend", defaultMaxIdlePerBackend)
	for code, f := range h.ErrorPages {
		h.ErrorPages[code] = c.FilePath(f)
	}
	if a := h.AccessLog; a != nil {
		a.Path = c.FilePath(a.Path)
		defaultTo(c, &a.Format, p+".access_log.format", defaultAccessLogFormat)
	}
	if t := h.TLS; t != nil {
		for j := range t.Certificates {
			t.Certificates[j].Cert = c.FilePath(t.Certificates[j].Cert)
			t.Certificates[j].Key = c.FilePath(t.Certificates[j].Key)
		}
		defaultTo(c, &t.MinVersion, p+".tls.min_version", defaultTLSMinVersion)
		if t.H2 == nil {
			t.H2 = ptr(true)
		}
	}
}

// http checks the http block of services[i] and reads the files it names.
func (k *checker) http(i int) {
	s := &k.c.Services[i]
	p := "services[" + strconv.Itoa(i) + "]"
	if s.HTTP == nil {
		return
	}
	if s.Protocol != ProtoHTTP {
		k.errorf(p+".http", "applies to protocol: http services only, not %s", s.Protocol)
		return
	}
	h := s.HTTP
	p += ".http"

	names := map[string]int{}
	for r := range h.Routes {
		k.route(s, r, p+".routes["+strconv.Itoa(r)+"]", names)
	}
	if ck := h.Cookie; ck != nil {
		if !cookieNameRE.MatchString(ck.Name) {
			k.errorf(p+".cookie.name", "want a cookie name of letters, digits and !#$%%&'*+.^_`|~-, got %q", ck.Name)
		}
		if ck.MaxAge < 0 {
			k.errorf(p+".cookie.max_age", "want a non-negative duration, got %s", ck.MaxAge)
		}
	}
	k.intRange(p+".limits.max_request_line", h.Limits.MaxRequestLine, 64, 1<<20)
	k.intRange(p+".limits.max_header_bytes", h.Limits.MaxHeaderBytes, 256, 1<<20)
	k.intRange(p+".limits.max_headers", h.Limits.MaxHeaders, 1, maxHeaders)
	if h.Limits.MaxRequestLine > h.Limits.MaxHeaderBytes {
		k.errorf(p+".limits.max_request_line", "%d is above max_header_bytes (%d), which includes the request line", h.Limits.MaxRequestLine, h.Limits.MaxHeaderBytes)
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{
		{"header", h.Timeouts.Header},
		{"keep_alive", h.Timeouts.KeepAlive},
		{"body", h.Timeouts.Body},
		{"response", h.Timeouts.Response},
	} {
		if t.d <= 0 {
			k.errorf(p+".timeouts."+t.key, "want a duration above 0, got %s", t.d)
		}
	}
	k.intRange(p+".max_idle_per_backend", h.MaxIdlePerBackend, 1, 65536)

	h.ErrorBodies = nil
	for _, code := range slices.Sorted(maps.Keys(h.ErrorPages)) {
		ep := joinKey(p+".error_pages", code)
		if !slices.Contains(errorPageCodes, code) {
			k.errorf(ep, "want an error page for 502, 503 or 504, got %q", code)
			continue
		}
		body, ok := k.readFile(ep, h.ErrorPages[code])
		if !ok {
			continue
		}
		if h.ErrorBodies == nil {
			h.ErrorBodies = map[int][]byte{}
		}
		n, _ := strconv.Atoi(code)
		h.ErrorBodies[n] = body
	}

	if a := h.AccessLog; a != nil {
		if a.Path == "" {
			k.errorf(p+".access_log.path", `required; want a file or "stderr"`)
		} else if a.Path != "stderr" {
			if st, err := os.Stat(k.c.FilePath(a.Path)); err == nil && st.IsDir() {
				k.errorf(p+".access_log.path", "%s is a directory; want a file", a.Path)
			} else if st, err := os.Stat(filepath.Dir(k.c.FilePath(a.Path))); err != nil || !st.IsDir() {
				k.errorf(p+".access_log.path", "the directory of %s does not exist", a.Path)
			} else if err := writable(k.c.FilePath(a.Path)); err != nil {
				k.errorf(p+".access_log.path", "%s cannot be written: %v", a.Path, err)
			}
		}
		k.oneOf(p+".access_log.format", a.Format, accessLogFormats)
	}

	if t := h.TLS; t != nil {
		tp := p + ".tls"
		k.oneOf(tp+".min_version", t.MinVersion, tlsVersions)
		if len(t.Certificates) == 0 {
			k.errorf(tp+".certificates", "at least one certificate is required")
		}
		for j := range t.Certificates {
			k.certificate(&t.Certificates[j], tp+".certificates["+strconv.Itoa(j)+"]")
		}
	}
}

// route checks routes[r] of service s at path rp; names maps route names
// to their index.
func (k *checker) route(s *Service, r int, rp string, names map[string]int) {
	rt := &s.HTTP.Routes[r]
	switch first, dup := names[rt.Name]; {
	case !nameRE.MatchString(rt.Name):
		k.errorf(rp+".name", "invalid name %q: want letters, digits, '_', '.' and '-', starting with a letter or digit", rt.Name)
	case dup:
		k.errorf(rp+".name", "duplicate route name %q, first used by routes[%d]", rt.Name, first)
	default:
		names[rt.Name] = r
	}
	if rt.Host != "" && !hostRE.MatchString(rt.Host) {
		k.errorf(rp+".host", `want a lower-case host name without port, "*.example.com" or an IP, got %q`, rt.Host)
	}
	if rt.PathPrefix != "" && (!strings.HasPrefix(rt.PathPrefix, "/") || strings.ContainsAny(rt.PathPrefix, " \t\r\n?#")) {
		k.errorf(rp+".path_prefix", "want a path starting with / without spaces, ? or #, got %q", rt.PathPrefix)
	}
	if rt.Host == "" && rt.PathPrefix == "" {
		k.errorf(rp, "a route needs a host, a path_prefix or both; requests matching nothing go to the service's backends")
	}
	k.scheduler(rp+".scheduler", rt.Scheduler)
	k.backends(rp+".backends", rt.Backends, false)
}

// certificate reads and checks one certificate and key pair.
func (k *checker) certificate(c *Certificate, cp string) {
	c.CertPEM, c.KeyPEM = nil, nil
	certPEM, certOK := k.readFile(cp+".cert", c.Cert)
	keyPEM, keyOK := k.readFile(cp+".key", c.Key)
	if !certOK || !keyOK {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		k.errorf(cp, "cert %s and key %s: %v", c.Cert, c.Key, err)
		return
	}
	c.CertPEM, c.KeyPEM = certPEM, keyPEM
}

// readFile reads a file named at path in the config.
func (k *checker) readFile(path, name string) ([]byte, bool) {
	if name == "" {
		k.errorf(path, "required; want a file name")
		return nil, false
	}
	b, err := os.ReadFile(k.c.FilePath(name))
	if err != nil {
		k.errorf(path, "%v", err)
		return nil, false
	}
	return b, true
}

// RouteHealth returns the health block that applies to backend j of route
// r of s: the service's with the backend's keys laid over it, as for the
// service's own backends. nil when neither has one.
func (s *Service) RouteHealth(r, j int) *Health {
	return s.healthFor(s.HTTP.Routes[r].Backends[j].Health)
}
