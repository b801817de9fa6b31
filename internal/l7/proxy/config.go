package proxy

import (
	"crypto/tls"
	"log/slog"
	"net/netip"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// Route sends matching requests to Pool. First match wins; no match goes
// to Config.Default.
type Route struct {
	// Host is "" for any host, an exact lower-case host without port, or
	// "*.example.com", which matches every host ending in ".example.com".
	Host string
	// PathPrefix is "" for any path; otherwise the request path (without
	// the query) must start with it.
	PathPrefix string
	// Pool has its own backends, scheduler and persistence.
	Pool *balancer.Service
}

// Cookie is cookie persistence as HAProxy's `cookie SRV insert indirect
// nocache`: the proxy inserts Set-Cookie: <Name>=<opaque id of the
// backend>, and a request that carries a valid id goes to that backend
// while it is available; otherwise it is balanced normally and gets a new
// cookie.
//
// The id is a truncated HMAC-SHA256 of the backend's address under Key, in
// hex, so it does not reveal the address and every node sharing Key
// computes the same ids. The cookie is left in the request forwarded to
// the backend: removing it would mean rewriting the Cookie field, and
// backends ignore cookies they do not know.
type Cookie struct {
	Name string
	// Key is the HMAC secret; l7int derives it from node-independent
	// configuration so a cluster agrees on the ids.
	Key []byte
	// MaxAge is the cookie's lifetime; 0 makes a session cookie.
	MaxAge           time.Duration
	Secure, HTTPOnly bool
}

// Forwarding says which fields tell a backend about the client.
type Forwarding struct {
	XForwardedFor   bool // append the client address (default on)
	XForwardedProto bool // http or https (default on)
	XForwardedHost  bool // the Host the client asked for (default on)
	Forwarded       bool // RFC 7239 (default off)
	XRealIP         bool // (default off)
}

// Config is one service's L7 settings. It is immutable once passed to New
// or Update. Zero durations and sizes take the defaults below.
type Config struct {
	Name    string
	Routes  []Route
	Default *balancer.Service // backends, backup, fallback and persistence
	Cookie  *Cookie           // nil: no cookie persistence
	Forward Forwarding
	Limits  http1.Limits

	HeaderTimeout     time.Duration // whole request head from the client (slowloris); default 10s
	IdleTimeout       time.Duration // client keep-alive idle between requests; default 60s
	BodyTimeout       time.Duration // longest wait for progress reading or writing a body; default 60s
	ConnectTimeout    time.Duration // upstream connect; default 5s
	ResponseTimeout   time.Duration // response head after the request was sent, else 504; default 60s
	MaxIdlePerBackend int           // reusable upstream connections kept per backend; default 1024
	// Retries is how many other backends are tried after a failed connect.
	// A connect failure is always safe to retry: nothing of the request
	// has been sent.
	Retries int
	// ErrorPages are full text/html bodies for 502, 503 and 504; a missing
	// one gets a short built-in text.
	ErrorPages map[int][]byte
	// AccessLog, if set, is called synchronously once per request. The
	// *Entry and its byte slices are valid only during the call.
	AccessLog func(*Entry)
	// NoPoller makes reads wait in Go's netpoller instead of fulcrum's
	// poller (poller.go); PollerEnv does so for every proxy.
	NoPoller bool
	// TLS, if set, makes Serve terminate TLS. ALPN "h2" is served by
	// golang.org/x/net/http2 with the Proxy as its Handler; anything else
	// takes the HTTP/1.1 path over the TLS connection.
	TLS *tls.Config
	Log *slog.Logger
}

// Defaults for zero Config fields.
const (
	DefaultHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultBodyTimeout       = 60 * time.Second
	DefaultConnectTimeout    = 5 * time.Second
	DefaultResponseTimeout   = 60 * time.Second
	DefaultMaxIdlePerBackend = 1024
)

// Entry is one access-log record.
type Entry struct {
	Start   time.Time
	Client  netip.AddrPort
	Service string
	// Backend is the backend's address, "" when none was chosen (a
	// malformed request, 503).
	Backend string
	// Path is the request target as the client sent it, query included.
	Method, Host, Path []byte
	Proto              string // "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"
	Status             int
	BytesIn            int64         // request body bytes from the client
	BytesOut           int64         // response body bytes to the client
	Wait               time.Duration // start to the upstream response head
	Total              time.Duration
}

// Stats are a proxy's totals since New; they survive Update.
type Stats struct {
	// Connections counts client connections accepted;
	// ActiveConnections is how many are open.
	Connections, ActiveConnections uint64
	// Requests counts requests read from clients, malformed ones included.
	Requests uint64
	// BadRequests counts 4xx answers the proxy made itself: malformed
	// requests, limits, header timeouts.
	BadRequests uint64
	// Status counts responses sent to clients by class: Status[2] is 2xx.
	// Index 0 counts requests that got no response at all (the backend
	// died mid-response, the client left).
	Status [6]uint64
	// UpstreamConnects counts new backend connections; UpstreamReuses
	// counts requests sent over a pooled one.
	UpstreamConnects, UpstreamReuses uint64
	// Aborted counts responses cut short after their head was sent: the
	// backend died mid-body or the client stopped reading. The client
	// connection was closed.
	Aborted uint64
	// Refused counts requests answered 503 because their pool had no
	// usable backend: every backend down, disabled or full, and the
	// fallback down or absent.
	Refused uint64
	// Poller tells whether reads wait on fulcrum's poller; PollerError
	// says why when it failed.
	Poller      PollerState
	PollerError string
}
