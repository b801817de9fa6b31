package daemon

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/l7/accesslog"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
	"github.com/fulcrum-lb/fulcrum/internal/l7/tlsconf"
)

// httpPlan is what an http service needs besides its own pool.
type httpPlan struct {
	// cfg is complete but for AccessLog and Log, which apply fills in
	// before handing it to the engine.
	cfg *proxy.Config
	// pools are the route pools, in route order.
	pools []*balancer.Service
	// accessLog is the resolved log path and format; path "" when none.
	accessLog accessLogSpec
}

type accessLogSpec struct {
	path   string
	format accesslog.Format
}

// buildHTTP builds the route pools and the engine config of the http
// service sc (services[i]), whose own pool is def.
func (p *plan) buildHTTP(i int, sc *config.Service, def *balancer.Service, live map[backendKey]*balancer.Backend, livePersist map[string]*balancer.Persistence) (*httpPlan, error) {
	h := sc.HTTP
	hp := &httpPlan{}
	routes := make([]proxy.Route, 0, len(h.Routes))
	for r := range h.Routes {
		rc := &h.Routes[r]
		pool, err := p.buildPool(sc, sc.PoolName(r), rc.Scheduler, rc.Backends,
			fmt.Sprintf("services[%d].http.routes[%d].scheduler", i, r), live, livePersist)
		if err != nil {
			return nil, err
		}
		routes = append(routes, proxy.Route{Host: rc.Host, PathPrefix: rc.PathPrefix, Pool: pool})
		hp.pools = append(hp.pools, pool)
	}
	f := h.Forwarded
	cfg := &proxy.Config{
		Name:    sc.Name,
		Routes:  routes,
		Default: def,
		Forward: proxy.Forwarding{
			XForwardedFor:   *f.XForwardedFor,
			XForwardedProto: *f.XForwardedProto,
			XForwardedHost:  *f.XForwardedHost,
			Forwarded:       f.Forwarded,
			XRealIP:         f.XRealIP,
		},
		Limits: http1.Limits{
			MaxLine:        h.Limits.MaxRequestLine,
			MaxHeaderBytes: h.Limits.MaxHeaderBytes,
			MaxHeaders:     h.Limits.MaxHeaders,
		},
		HeaderTimeout:     h.Timeouts.Header.D(),
		IdleTimeout:       h.Timeouts.KeepAlive.D(),
		BodyTimeout:       h.Timeouts.Body.D(),
		ConnectTimeout:    sc.Timeouts.Connect.D(),
		ResponseTimeout:   h.Timeouts.Response.D(),
		MaxIdlePerBackend: h.MaxIdlePerBackend,
		Retries:           sc.RetryCount(),
		ErrorPages:        h.ErrorBodies,
		NoPoller:          !h.PollerValue(),
	}
	if ck := h.Cookie; ck != nil {
		cfg.Cookie = &proxy.Cookie{
			Name:     ck.Name,
			Key:      sc.CookieKey(),
			MaxAge:   ck.MaxAge.D(),
			Secure:   ck.Secure,
			HTTPOnly: ck.HTTPOnlyValue(),
		}
	}
	if t := h.TLS; t != nil {
		opt := tlsconf.Options{MinVersion: t.TLSVersion(), H2: t.H2Value()}
		for _, c := range t.Certificates {
			opt.Pairs = append(opt.Pairs, tlsconf.Pair{CertPEM: c.CertPEM, KeyPEM: c.KeyPEM, Name: c.Cert})
		}
		tc, err := tlsconf.New(opt)
		if err != nil {
			path := fmt.Sprintf("services[%d].http.tls", i)
			line, col := p.cfg.Pos(path)
			return nil, fmt.Errorf("%s:%d:%d: %s: %w", p.cfg.File, line, col, path, err)
		}
		cfg.TLS = tc
	}
	if a := h.AccessLog; a != nil {
		format, err := accesslog.ParseFormat(a.Format)
		if err != nil {
			return nil, err // Validate accepts only known formats
		}
		hp.accessLog = accessLogSpec{path: a.Path, format: format} // made absolute by Load
	}
	hp.cfg = cfg
	return hp, nil
}

// owns reports whether b serves svc: one of its backends, or one of its
// route pools'.
func (s *snapshot) owns(svc *balancer.Service, b *balancer.Backend) bool {
	if svc.Owns(b) {
		return true
	}
	for _, pool := range s.pools[svc.Name] {
		if pool.Owns(b) {
			return true
		}
	}
	return false
}

// accessLogs are the open access-log writers, by path, shared by the
// services logging there. Owned by the Run goroutine.
type accessLogs map[string]*accesslog.Writer

// open opens the writers the plan needs that are not open yet, which log
// their failed writes to log; on error it closes those it opened and
// changes nothing.
func (al accessLogs) open(p *plan, log *slog.Logger) (fresh []*accesslog.Writer, err error) {
	seen := map[string]bool{}
	for _, hp := range p.http {
		path := hp.accessLog.path
		if path == "" || al[path] != nil || seen[path] {
			continue
		}
		w, err := accesslog.Open(path, accesslog.DefaultTick, log)
		if err != nil {
			for _, w := range fresh {
				w.Close()
			}
			return nil, fmt.Errorf("service %s: %w", hp.cfg.Name, err)
		}
		seen[path] = true
		fresh = append(fresh, w)
	}
	return fresh, nil
}

// commit adds fresh writers, reopens the ones kept (a reload is what
// logrotate's postrotate asks for) and closes, after grace, the ones no
// service uses any more: requests in flight on the previous engine config
// may still log to them.
func (al accessLogs) commit(p *plan, fresh []*accesslog.Writer, grace time.Duration, log *slog.Logger) {
	for _, w := range fresh {
		al[w.Path()] = w
	}
	used := al.attach(p)
	isFresh := map[*accesslog.Writer]bool{}
	for _, w := range fresh {
		isFresh[w] = true
	}
	for path, w := range al {
		switch {
		case !used[path]:
			delete(al, path)
			time.AfterFunc(grace, func() { w.Close() })
		case !isFresh[w]:
			if err := w.Reopen(); err != nil {
				log.Error("access log not reopened, still writing to the old file", "path", path, "error", err)
			}
		}
	}
}

// attach gives each http engine config of the plan the writer of its
// access log, which must be open, and returns the paths used.
func (al accessLogs) attach(p *plan) map[string]bool {
	used := map[string]bool{}
	for _, hp := range p.http {
		if path := hp.accessLog.path; path != "" {
			used[path] = true
			hp.cfg.AccessLog = al[path].Func(hp.accessLog.format)
		}
	}
	return used
}

// list returns the open writers, for the snapshot Status reads.
func (al accessLogs) list() []*accesslog.Writer {
	ws := make([]*accesslog.Writer, 0, len(al))
	for _, w := range al {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *accesslog.Writer) int { return strings.Compare(a.Path(), b.Path()) })
	return ws
}

// closeAll flushes and closes every writer, at shutdown.
func (al accessLogs) closeAll() {
	for path, w := range al {
		w.Close()
		delete(al, path)
	}
}
