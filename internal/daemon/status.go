package daemon

import (
	"cmp"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/health"
)

var _ admin.Source = (*Daemon)(nil)

// Status reports the running state for the admin API. It reads only the
// published snapshot and atomics, so it is safe from any goroutine.
func (d *Daemon) Status() admin.Status {
	st := admin.Status{Version: d.opt.Version, Started: d.started, Time: time.Now()}
	snap := d.snap.Load()
	if snap == nil {
		return st
	}
	st.Node = snap.cfg.Node.Name
	st.ConfigFile = snap.cfg.File
	st.ConfigHash = snap.hash
	st.Reloads.OK = d.reloadsOK.Load()
	st.Reloads.Failed = d.reloadsFailed.Load()
	if r := d.lastReload.Load(); r != nil {
		st.Reloads.Last = r.at
		st.Reloads.LastError = r.err
	}
	st.Alerts.QueueDropped = d.alerts.QueueDropped()
	st.Alerts.Hooks = []admin.AlertHook{}
	for _, h := range d.alerts.Stats() {
		st.Alerts.Hooks = append(st.Alerts.Hooks, admin.AlertHook{
			Name: h.Name, Sent: h.Sent, Failed: h.Failed, Dropped: h.Dropped, Overflow: h.Overflow,
			LastError: h.LastError, LastSent: h.LastSent,
		})
	}
	st.HA = d.ha.Status()
	for _, w := range snap.logs {
		ls := w.Stats()
		st.AccessLogs = append(st.AccessLogs, admin.AccessLog{
			Path: ls.Path, Lines: ls.Lines, WriteErrors: ls.Errors, LinesLost: ls.Lost,
			LastError: ls.LastError, LastErrorAt: ls.LastErrorAt,
		})
	}
	probes := map[string]health.ProbeStatus{}
	for _, ps := range d.monitor.Status() {
		probes[ps.ID] = ps
	}
	if snap.director != nil {
		ds := snap.director.Status()
		ds.Sync = d.syncStatus()
		st.Director = &ds
	}
	for _, svc := range snap.services {
		s := admin.Service{
			Name:      svc.Name,
			Protocol:  svc.Protocol,
			Listen:    svc.Listen.String(),
			Scheduler: svc.Scheduler,
			Backends:  []admin.Backend{},
			Removed:   snap.removed[svc.Name],
		}
		if sc := snap.cfg.Service(svc.Name); sc != nil {
			s.Forwarding = cmp.Or(sc.Forwarding, config.ForwardProxy)
		}
		if p := svc.Persistence(); p != nil {
			s.Persistence = &admin.Persistence{TimeoutSeconds: p.Timeout().Seconds(), Entries: p.Len()}
		}
		var front Frontend
		if l := snap.fronts[svc.Name]; l != nil {
			front = l.front
			front.Status(&s)
		}
		s.Backends = snap.poolStatus(svc, front, probes)
		s.Routes = snap.routeStatus(svc.Name, front, probes)
		st.Services = append(st.Services, s)
	}
	d.adminScopes(&st)
	return st
}

// poolStatus lists the backends of one pool (a service or an http
// route's): primaries, backups, then the fallback, with the runtime
// changes made to them.
func (snap *snapshot) poolStatus(svc *balancer.Service, front Frontend, probes map[string]health.ProbeStatus) []admin.Backend {
	out := []admin.Backend{}
	for _, b := range svc.Primary() {
		bs := backendStatus(b, admin.RolePrimary, probes, svc, front)
		bs.Runtime = snap.runtime[backendKey{service: svc.Name, addr: b.Addr}]
		out = append(out, bs)
	}
	for _, b := range svc.Backup() {
		bs := backendStatus(b, admin.RoleBackup, probes, svc, front)
		bs.Runtime = snap.runtime[backendKey{service: svc.Name, addr: b.Addr}]
		out = append(out, bs)
	}
	if b := svc.Fallback(); b != nil {
		out = append(out, backendStatus(b, admin.RoleFallback, probes, svc, front))
	}
	return out
}

// routeStatus lists the route pools of the http service named service;
// nil for other services.
func (snap *snapshot) routeStatus(service string, front Frontend, probes map[string]health.ProbeStatus) []admin.Route {
	sc, pools := snap.cfg.Service(service), snap.pools[service]
	if sc == nil || sc.HTTP == nil || len(pools) != len(sc.HTTP.Routes) {
		return nil
	}
	out := make([]admin.Route, len(pools))
	for r, pool := range pools {
		rc := &sc.HTTP.Routes[r]
		out[r] = admin.Route{
			Name:       pool.Name,
			Host:       rc.Host,
			PathPrefix: rc.PathPrefix,
			Scheduler:  pool.Scheduler,
			Backends:   snap.poolStatus(pool, front, probes),
		}
		if p := pool.Persistence(); p != nil {
			out[r].Persistence = &admin.Persistence{TimeoutSeconds: p.Timeout().Seconds(), Entries: p.Len()}
		}
	}
	return out
}

func backendStatus(b *balancer.Backend, role string, probes map[string]health.ProbeStatus, svc *balancer.Service, front Frontend) admin.Backend {
	s := b.Stats()
	var h *admin.Health
	id := watchID(svc.Name, b.Addr)
	if role == admin.RoleFallback { // the service's, shared by its route pools
		service, _, _ := strings.Cut(svc.Name, "/")
		id = fallbackWatchID(service, b.Addr)
	}
	if ps, ok := probes[id]; ok {
		h = &admin.Health{
			Check:          ps.Check,
			State:          ps.State.String(),
			Since:          ps.Since,
			LastCheck:      ps.LastCheck,
			LastDurationMS: float64(ps.LastDuration.Microseconds()) / 1000,
			LastOK:         ps.LastOK,
			LastReason:     ps.LastReason,
			Checks:         ps.Checks,
			Failures:       ps.Failures,
			Flaps:          ps.Flaps,
			Shared:         ps.Shared,
			Durations:      histogram(ps.Durations),
		}
	}
	ab := admin.Backend{
		SlowStart:       s.Ramping,
		Health:          h,
		Address:         b.Addr.String(),
		Role:            role,
		Weight:          s.Weight,
		MaxConnections:  s.MaxConnections,
		Healthy:         s.Healthy,
		Available:       b.Available(),
		AdminState:      b.AdminState().String(),
		Active:          s.Active,
		Total:           s.Total,
		ConnectFailures: s.ConnectFailed,
		BytesIn:         s.BytesIn,
		BytesOut:        s.BytesOut,

		ConfiguredWeight: b.ConfiguredWeight(),
	}
	if front != nil {
		front.BackendStatus(b, &ab)
	}
	return ab
}

// histogram converts a balancer histogram for the API; the bounds are
// shared, not copied.
func histogram(s balancer.HistogramSnapshot) *admin.Histogram {
	return &admin.Histogram{Bounds: balancer.LatencyBounds[:], Counts: s.Counts[:], Count: s.Count, Sum: s.Sum}
}

// AdminAddr is the admin API's bound address, or "" when it is off.
func (d *Daemon) AdminAddr() string {
	return d.adminAddr.Load().(string)
}
