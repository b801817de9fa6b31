package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director"
	"github.com/fulcrum-lb/fulcrum/internal/health"
)

// backendKey identifies a backend's live state across reloads: the same
// address in the same service keeps its counters and health.
type backendKey struct {
	service  string
	addr     netip.AddrPort
	fallback bool
}

// watchID names the health watch of the backend k.
func (k backendKey) watchID() string {
	if k.fallback {
		return fallbackWatchID(k.service, k.addr)
	}
	return watchID(k.service, k.addr)
}

// plan is the runtime a config would produce. Building it has no side
// effects on the running state: changes to backends that already exist are
// collected in commit and applied only once every listener is bound.
type plan struct {
	cfg      *config.Config
	services []*balancer.Service
	backends map[backendKey]*balancer.Backend
	persist  map[string]*balancer.Persistence
	commit   []func()

	watches   []health.Watch
	watchInfo map[string]*watched
	initUp    map[string]bool // watch id → its initial state

	// http holds the engine config and route pools of each http service,
	// by service name.
	http map[string]*httpPlan

	// fronts are the listeners serving the services, by service name,
	// filled in when the listeners commit.
	fronts map[string]*listener

	// kernel are the specs of the services with forwarding direct or
	// tunnel, by name; director is the kernel director that programs
	// them, set by the director stage.
	kernel   map[string]director.ServiceSpec
	director KernelDirector
}

// Plan checks that cfg can be turned into a runtime without binding
// anything: what `fulcrum check` runs after config validation.
func Plan(cfg *config.Config) error {
	_, err := buildPlan(cfg, nil, nil)
	return err
}

// buildPlan turns cfg into services, reusing live backends and persistence
// tables from the running state (nil maps at start).
func buildPlan(cfg *config.Config, live map[backendKey]*balancer.Backend, livePersist map[string]*balancer.Persistence) (*plan, error) {
	p := &plan{
		cfg:      cfg,
		backends: make(map[backendKey]*balancer.Backend),
		persist:  make(map[string]*balancer.Persistence),
		initUp:   map[string]bool{},
		http:     map[string]*httpPlan{},
		kernel:   map[string]director.ServiceSpec{},
	}
	var errs []error
	ws, info, err := healthPlan(cfg)
	if err != nil {
		return nil, err
	}
	p.watches, p.watchInfo = ws, info
	for _, w := range ws {
		p.initUp[w.ID] = w.Spec.InitialUp
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		svc, err := p.buildService(i, sc, live, livePersist)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sc.Protocol == config.ProtoHTTP {
			hp, err := p.buildHTTP(i, sc, svc, live, livePersist)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			p.http[sc.Name] = hp
		}
		if sc.InKernel() {
			p.kernel[sc.Name] = kernelSpec(sc)
		}
		p.services = append(p.services, svc)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, w := range p.watchInfo {
		w.backend = p.backends[backendKey{service: w.service, addr: w.addr, fallback: w.fallback}]
	}
	return p, nil
}

func (p *plan) buildService(i int, sc *config.Service, live map[backendKey]*balancer.Backend, livePersist map[string]*balancer.Persistence) (*balancer.Service, error) {
	if _, ok := dataPlanes[sc.Protocol]; !ok {
		line, col := p.cfg.Pos(fmt.Sprintf("services[%d].protocol", i))
		return nil, fmt.Errorf("%s:%d:%d: services[%d].protocol: %q services are not supported by this build (tcp, udp, http)",
			p.cfg.File, line, col, i, sc.Protocol)
	}
	return p.buildPool(sc, sc.Name, sc.Scheduler, sc.Backends, fmt.Sprintf("services[%d].scheduler", i), live, livePersist)
}

// buildPool builds the balancer.Service named name over backends: a
// service's own pool, or one of its http routes' (named SERVICE/ROUTE).
// Backends, health and persistence state are keyed by name; the sorry
// server (fallback) is the service's, shared by all its pools.
func (p *plan) buildPool(sc *config.Service, name, scheduler string, backends []config.Backend, schedPath string, live map[backendKey]*balancer.Backend, livePersist map[string]*balancer.Persistence) (*balancer.Service, error) {
	var primary, backup []*balancer.Backend
	for _, bc := range backends {
		addr := netip.MustParseAddrPort(bc.Address)
		b := p.backend(backendKey{service: name, addr: addr}, live, bc.WeightValue(), bc.MaxConnections)
		p.initialDown(backendKey{service: name, addr: addr}, b, live)
		if bc.Backup {
			backup = append(backup, b)
		} else {
			primary = append(primary, b)
		}
	}
	var fallback *balancer.Backend
	if sc.Fallback != "" {
		addr := netip.MustParseAddrPort(sc.Fallback)
		k := backendKey{service: sc.Name, addr: addr, fallback: true}
		fallback = p.backend(k, live, 1, 0)
		p.initialDown(k, fallback, live)
	}
	var persist *balancer.Persistence
	// The kernel keeps the persistence of a director service.
	if pc := sc.Persistence; pc != nil && !sc.InKernel() {
		if old := livePersist[name]; old != nil && old.Matches(pc.Timeout.D(), pc.Netmask, pc.Netmask6, pc.MaxEntries) {
			persist = old
		} else {
			persist = balancer.NewPersistence(pc.Timeout.D(), pc.Netmask, pc.Netmask6, pc.MaxEntries)
		}
		p.persist[name] = persist
	}
	spec := balancer.ServiceSpec{
		Name:               name,
		Protocol:           sc.Protocol,
		Scheduler:          scheduler,
		Listen:             sc.ListenAddr(),
		ConnectTimeout:     sc.Timeouts.Connect.D(),
		IdleTimeout:        sc.Timeouts.Idle.D(),
		ProxyHeaderTimeout: sc.Timeouts.ProxyHeader.D(),
		Quiescent:          sc.QuiescentValue(),
		Retries:            sc.RetryCount(),
		SendProxy:          sc.ProxyProtocol.Send,
		AcceptProxy:        sc.ProxyProtocol.Accept,
		MaxSessions:        sc.MaxSessions,
		MaxPerClient:       sc.MaxSessionsPerClient,
		HashPort:           sc.HashPort,
	}
	svc, err := balancer.NewService(spec, primary, backup, fallback, persist)
	if err != nil {
		line, col := p.cfg.Pos(schedPath)
		return nil, fmt.Errorf("%s:%d:%d: %s: %w", p.cfg.File, line, col, schedPath, err)
	}
	return svc, nil
}

// initialDown marks b down if it is new and checked with initial: down.
func (p *plan) initialDown(k backendKey, b *balancer.Backend, live map[backendKey]*balancer.Backend) {
	if up, watched := p.initUp[k.watchID()]; watched && !up && live[k] == nil {
		b.SetHealthy(false)
	}
}

// snapshotOf is what the frontend of svc, one of the plan's services,
// serves.
func (p *plan) snapshotOf(svc *balancer.Service) ServiceSnapshot {
	snap := ServiceSnapshot{Service: svc}
	if hp := p.http[svc.Name]; hp != nil {
		snap.HTTP = hp.cfg
	}
	if spec, ok := p.kernel[svc.Name]; ok {
		snap.Kernel = &kernelSnapshot{spec: spec, dir: p.director}
	}
	return snap
}

// backend reuses the live backend for k (its weight and limit updated at
// commit) or makes a new one.
func (p *plan) backend(k backendKey, live map[backendKey]*balancer.Backend, weight, maxConns int) *balancer.Backend {
	if b := p.backends[k]; b != nil {
		return b
	}
	b := live[k]
	if b == nil {
		b = balancer.NewBackend(k.addr, weight, maxConns)
	} else {
		p.commit = append(p.commit, func() {
			b.SetWeight(weight)
			b.SetMaxConns(maxConns)
		})
	}
	p.backends[k] = b
	return b
}
