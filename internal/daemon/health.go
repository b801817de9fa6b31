package daemon

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/health"
)

// watched is what the daemon knows about one health watch: the backend it
// drives and what a transition does to it.
type watched struct {
	service   string
	addr      netip.AddrPort
	backend   *balancer.Backend // filled in by buildPlan
	slowStart time.Duration
	fallback  bool // the service's sorry server
}

// watchID names the watch of one backend of one service.
func watchID(service string, addr netip.AddrPort) string {
	return service + "|" + addr.String()
}

// fallbackWatchID names the watch of a service's fallback (sorry) server,
// which may share its address with one of the service's backends.
func fallbackWatchID(service string, addr netip.AddrPort) string {
	return service + "|fallback|" + addr.String()
}

// healthPlan derives the monitor's watches from a config. Errors here are
// config problems Validate cannot see (a status range or regex that the
// checker rejects), reported like validation errors.
func healthPlan(cfg *config.Config) ([]health.Watch, map[string]*watched, error) {
	var ws []health.Watch
	info := map[string]*watched{}
	// add watches the backend at address of pool (a service, or an http
	// route's pool SERVICE/ROUTE) with its effective health block h; or,
	// with fallback, the service's sorry server.
	add := func(i int, sc *config.Service, pool, address string, h *config.Health, fallback bool) error {
		if h == nil {
			return nil
		}
		addr := netip.MustParseAddrPort(address)
		spec := h.Spec()
		if _, err := health.NewChecker(spec); err != nil {
			line, col := cfg.Pos(fmt.Sprintf("services[%d].health", i))
			return fmt.Errorf("%s:%d:%d: services[%d].health: %w", cfg.File, line, col, i, err)
		}
		target := addr
		if h.Address != "" {
			target = netip.AddrPortFrom(netip.MustParseAddr(h.Address), target.Port())
		}
		if h.Port != 0 {
			target = netip.AddrPortFrom(target.Addr(), uint16(h.Port))
		}
		id := watchID(pool, addr)
		if fallback {
			id = fallbackWatchID(pool, addr)
		}
		ws = append(ws, health.Watch{
			ID:              id,
			Target:          health.Target{Addr: target, Backend: addr, Service: pool},
			Spec:            spec,
			PassiveFailures: h.Passive.Failures,
		})
		info[id] = &watched{
			service:   pool,
			addr:      addr,
			slowStart: sc.SlowStart.D(),
			fallback:  fallback,
		}
		return nil
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		for j := range sc.Backends {
			if err := add(i, sc, sc.Name, sc.Backends[j].Address, sc.EffectiveHealth(j), false); err != nil {
				return nil, nil, err
			}
		}
		if sc.Fallback != "" {
			if err := add(i, sc, sc.Name, sc.Fallback, sc.FallbackHealth(), true); err != nil {
				return nil, nil, err
			}
		}
		if sc.Protocol != config.ProtoHTTP || sc.HTTP == nil {
			continue
		}
		for r := range sc.HTTP.Routes {
			for j := range sc.HTTP.Routes[r].Backends {
				if err := add(i, sc, sc.PoolName(r), sc.HTTP.Routes[r].Backends[j].Address, sc.RouteHealth(r, j), false); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	return ws, info, nil
}

// passive forwards a backend's connect outcomes to the monitor.
type passive struct {
	mon *health.Monitor
	id  string
}

var _ balancer.Observer = passive{}

func (p passive) Failed(reason string) { p.mon.ReportFailure(p.id, reason) }
func (p passive) Succeeded()           { p.mon.ReportSuccess(p.id) }

// watchTable is the published id → watched map the transition handler
// reads; replaced whole on every reload.
type watchTable = atomic.Pointer[map[string]*watched]

// onHealth applies a health transition. It runs on a monitor goroutine
// and must not block: everything slow (closing connections after the
// grace period, alert delivery) happens elsewhere.
func (d *Daemon) onHealth(tr health.Transition) {
	tbl := d.watches.Load()
	if tbl == nil {
		return
	}
	w := (*tbl)[tr.ID]
	if w == nil || w.backend == nil {
		return
	}
	up := tr.To == health.Up
	// The monitor emits real transitions only; commitHealth may already
	// have copied this state over, so the side effects do not depend on
	// SetHealthy seeing a change.
	d.healthMu.Lock()
	w.backend.SetHealthy(up)
	d.healthMu.Unlock()
	if up && w.slowStart > 0 {
		w.backend.SlowStart(w.slowStart)
	}
	d.refreshKernel(w.backend)
	if !up {
		d.evictLater(w.backend, d.evictTargets(w.backend))
	}
	d.alerts.Notify(alert.Event{
		Kind:      "backend",
		Service:   w.service,
		Backend:   w.backend.Addr.String(),
		State:     tr.To.String(),
		PrevState: tr.From.String(),
		Reason:    tr.Reason,
		Node:      d.nodeName(),
		Time:      tr.At,
	})
}

func (d *Daemon) nodeName() string {
	if snap := d.snap.Load(); snap != nil {
		return snap.cfg.Node.Name
	}
	return ""
}

// alertHooks converts the config's alert hooks.
func alertHooks(cfg *config.Config) []alert.Hook {
	hooks := make([]alert.Hook, 0, len(cfg.Alerts))
	for _, a := range cfg.Alerts {
		// Events of an http route's backends name the pool (web/api): a
		// hook for the service hears its routes too.
		services := a.Services
		for _, name := range a.Services {
			if sc := cfg.Service(name); sc != nil && sc.HTTP != nil && sc.Protocol == config.ProtoHTTP {
				for r := range sc.HTTP.Routes {
					services = append(services[:len(services):len(services)], sc.PoolName(r))
				}
			}
		}
		hooks = append(hooks, alert.Hook{
			Name:         a.Name,
			Exec:         a.Exec,
			Webhook:      a.Webhook,
			Timeout:      a.Timeout.D(),
			Kinds:        a.Events,
			Services:     services,
			MaxPerMinute: a.MaxPerMinute,
		})
	}
	return hooks
}

// commitHealth hands the plan's watches to the monitor and makes every
// backend's health agree with it: backends without checks are up, and a
// backend whose check changed takes the state of its (new) probe.
func (d *Daemon) commitHealth(p *plan) {
	d.watches.Store(&p.watchInfo)
	for _, b := range p.backends {
		b.SetObserver(nil)
	}
	for _, w := range p.watches {
		info := p.watchInfo[w.ID]
		if w.PassiveFailures > 0 && info.backend != nil {
			info.backend.SetObserver(passive{mon: d.monitor, id: w.ID})
		}
	}
	d.monitor.Set(p.watches)
	// healthMu orders this copy with onHealth: a transition that lands
	// after the Status read below is applied after it, not overwritten.
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	state := map[string]bool{}
	for _, st := range d.monitor.Status() {
		state[st.ID] = st.State == health.Up
	}
	for k, b := range p.backends {
		up, watched := state[k.watchID()]
		if !watched {
			up = true
		}
		b.SetHealthy(up)
	}
}
