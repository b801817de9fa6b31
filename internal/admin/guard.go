package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the values of fulcrum_admin_requests_refused_total's
// reason label.
const (
	refusedHost        = "host"         // Host is a name other than localhost
	refusedCrossOrigin = "cross_origin" // a browser's cross-site action
	refusedToken       = "token"        // missing or wrong bearer token
	refusedNotLocal    = "not_local"    // no token file and a remote client
)

var refusalReasons = []string{refusedHost, refusedCrossOrigin, refusedToken, refusedNotLocal}

// refusals counts the requests the guards turned away, by reason. Safe
// for concurrent use.
type refusals struct {
	n       [4]atomic.Uint64 // indexed like refusalReasons
	lastLog atomic.Int64     // unix nanoseconds of the last host warning
}

func (r *refusals) add(reason string) {
	for i, name := range refusalReasons {
		if name == reason {
			r.n[i].Add(1)
			return
		}
	}
}

// hostAllowed reports whether a request's Host may reach the API: empty
// (HTTP/1.0), an IP literal with or without a port, or localhost. The
// configured admin.listen is always an IP literal. Any other name may be
// one that a web page rebinds to this node's address (DNS rebinding):
// the browser then treats the API as the page's own origin, so neither
// Origin checks nor the loopback rule stop it.
func hostAllowed(host string) bool {
	if host == "" {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		h = host[1 : len(host)-1]
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return strings.EqualFold(strings.TrimSuffix(h, "."), "localhost")
}

// hostGuard answers 421 to a request whose Host is not allowed.
func (s *Server) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostAllowed(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		s.refused.add(refusedHost)
		// A page could send many; one warning a minute is enough to see it.
		now := time.Now().UnixNano()
		if last := s.refused.lastLog.Load(); now-last >= int64(time.Minute) && s.refused.lastLog.CompareAndSwap(last, now) {
			s.log.Warn("admin request refused: Host is a name, not an address (DNS rebinding?)",
				"client", r.RemoteAddr, "host", r.Host, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		}
		writeJSON(w, http.StatusMisdirectedRequest, map[string]string{
			"error": "Host must be an IP address or localhost: use http://<admin.listen>/",
		})
	})
}

// bearerToken returns the credentials of an Authorization header using
// the Bearer scheme, whose name is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimLeft(h, " "), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.Trim(token, " "), true
}

// refusalCollector exports a Server's refusal counts.
type refusalCollector struct {
	r    *refusals
	desc *prometheus.Desc
}

var _ prometheus.Collector = (*refusalCollector)(nil)

func newRefusalCollector(r *refusals) *refusalCollector {
	return &refusalCollector{r: r, desc: prometheus.NewDesc("fulcrum_admin_requests_refused_total",
		"Admin API requests refused since the admin listener started, by reason: host (Host is a name other than localhost: DNS rebinding), cross_origin (a cross-site browser action), token (missing or wrong bearer token), not_local (no token file and a non-loopback client).",
		[]string{"reason"}, nil)}
}

func (c *refusalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *refusalCollector) Collect(ch chan<- prometheus.Metric) {
	for i, reason := range refusalReasons {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.r.n[i].Load()), reason)
	}
}
