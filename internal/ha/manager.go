// Package ha runs a node's HA groups: one VRRP instance per group, what
// each tracks (services, interfaces, scripts, pings), the hello between
// peers and the hand-over of the VIPs. The daemon is its host: it hands
// the manager each config to apply and answers what the groups ask of
// the running services (Host).
package ha

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// Host is what the HA groups need from the daemon that runs them. The
// manager calls it from its own goroutines (trackers, hand-overs), so
// every method must be safe for concurrent use and must not block on the
// goroutine that applies configs.
type Host interface {
	// ServiceAlive reports whether the running service name can serve
	// (tracking), and why not.
	ServiceAlive(name string) (ok bool, detail string)
	// Busy reports whether client connections to one of vips, or to a
	// service listening on every address, are in flight on this node.
	Busy(vips []netip.Prefix) bool
	// SetReleasing turns keep-alive off (true) or back on (false) for the
	// HTTP services on vips while a hand-over holds them.
	SetReleasing(vips []netip.Prefix, on bool)
	// PreemptHold reports why a group on vips should not yet take them
	// back from a live master it outranks, "" when nothing holds it: the
	// node is still receiving what it needs to carry the master's
	// connections on (the director's flow tables from its peers). A
	// group asks it at each advert of such a master, for at most
	// MaxPreemptHold after it started, on its VRRP goroutine.
	PreemptHold(vips []netip.Prefix) string
}

// Alerter delivers HA transitions to the alert hooks; Notify must not
// block (alert.Dispatcher).
type Alerter interface {
	Notify(alert.Event)
}

// Options configure a Manager.
type Options struct {
	Host   Host
	Alerts Alerter
	Log    *slog.Logger
	// Deps are the privileged pieces; zero fields take the real ones.
	Deps Deps
	// OnAdmin receives the peers' runtime admin states (see
	// hello.AdminTable) from the hello's receiver; it must not block.
	OnAdmin func(hello.AdminTable)
}

// ErrNoGroup is returned by Release for an unknown group.
var ErrNoGroup = errors.New("no such ha group")

// Manager owns the running HA groups and the hello endpoint.
//
// Threading: Prepare, Commit, Rollback, SetConfigHash and Stop change the
// running groups and must be called from one goroutine at a time (the
// daemon's config applier). Release, Status and Hello are safe from any
// goroutine: they read only what the applier publishes.
type Manager struct {
	opt Options
	log *slog.Logger

	holds sync.WaitGroup // groups keeping their VIPs for a hand-over

	groups     map[string]*group // owned by the applier
	published  atomic.Pointer[map[string]*group]
	syncGroups atomic.Pointer[[]config.SyncGroup]
	node       atomic.Pointer[string]
	hello      helloState // owned by the applier
	helloEP    atomic.Pointer[hello.Endpoint]
	admin      atomic.Pointer[[]hello.AdminEntry]
}

// New returns a manager with no groups; Commit starts them.
func New(opt Options) *Manager {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	opt.Deps = opt.Deps.withDefaults()
	m := &Manager{opt: opt, log: opt.Log.With("component", "ha")}
	node := ""
	m.node.Store(&node)
	return m
}

// Pending is what Prepare opened for a config: Commit makes it run,
// Rollback closes it. Exactly one of them is called.
type Pending struct {
	m      *Manager
	cfg    *config.Config
	groups map[string]*group
	hello  *hello.Endpoint
}

// Prepare opens what cfg's groups and hello need, reusing the running
// groups whose config did not change. Nothing running is touched: a
// failure closes what it opened and returns every error.
func (m *Manager) Prepare(cfg *config.Config) (*Pending, error) {
	next, err := m.prepareGroups(cfg)
	if err != nil {
		return nil, err
	}
	p := &Pending{m: m, cfg: cfg, groups: next}
	if p.hello, err = m.prepareHello(cfg); err != nil {
		p.closeGroups()
		return nil, err
	}
	return p, nil
}

// Rollback closes what Prepare opened and the running state does not use.
func (p *Pending) Rollback() {
	p.closeGroups()
	if p.hello != nil && p.hello != p.m.hello.ep {
		p.hello.Close()
	}
}

func (p *Pending) closeGroups() {
	for name, g := range p.groups {
		if p.m.groups[name] != g {
			g.close()
		}
	}
}

// Commit stops the groups the config dropped or changed, starts the new
// ones and hands the hello its groups. It cannot fail. Call it after the
// host publishes the services the groups track.
func (p *Pending) Commit() {
	m := p.m
	node := p.cfg.Node.Name
	m.node.Store(&node)
	m.commitGroups(p.cfg, p.groups)
	m.commitHello(p.cfg, p.hello)
}

func (m *Manager) nodeName() string { return *m.node.Load() }

// prepareGroups reconciles the running groups with cfg: unchanged groups
// keep running untouched; changed ones are replaced. A failure leaves
// everything as it was.
func (m *Manager) prepareGroups(cfg *config.Config) (map[string]*group, error) {
	next := map[string]*group{}
	var errs []error
	for i := range cfg.HA.Groups {
		g := &cfg.HA.Groups[i]
		if old := m.groups[g.Name]; old != nil && old.key == groupKey(cfg.Node.Name, g) {
			next[g.Name] = old
			continue
		}
		hg, err := m.prepareGroup(cfg, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next[g.Name] = hg
	}
	if len(errs) > 0 {
		for name, hg := range next {
			if m.groups[name] != hg {
				hg.close()
			}
		}
		return nil, errors.Join(errs...)
	}
	return next, nil
}

func (m *Manager) commitGroups(cfg *config.Config, next map[string]*group) {
	for name, old := range m.groups {
		if next[name] != old {
			m.log.Info("stopping ha group", "group", name)
			old.stop()
		}
	}
	for name, hg := range next {
		if m.groups[name] != hg {
			m.log.Info("starting ha group", "group", name, "vrid", hg.cfg.VRID, "interface", hg.cfg.Interface)
			m.startGroup(hg)
		}
	}
	m.groups = next
	m.published.Store(&next)
	m.syncGroups.Store(&cfg.HA.SyncGroups)
}

// SetConfigHash gives every group's socket the running config's hash
// (hex): authenticated adverts carry its first bytes, and the hello all
// of it, so that peers can see whether they run the same config.
func (m *Manager) SetConfigHash(hash string) {
	sum, err := hex.DecodeString(hash)
	if err != nil {
		return
	}
	for _, hg := range m.groups {
		if h, ok := hg.conn.(vrrp.ConfigHasher); ok {
			h.SetConfigHash(sum)
		}
	}
	if m.hello.ep != nil {
		m.hello.ep.SetConfigHash(hash)
	}
}

// Release hands the group's VIPs over to a peer (`fulcrum ha release`).
func (m *Manager) Release(ctx context.Context, name string) error {
	hg, err := m.group(name)
	if err != nil {
		return err
	}
	return hg.inst.Release(ctx)
}

// Reclaim undoes Release (`fulcrum ha reclaim`): the group preempts again
// as configured. A group no release holds back is an error.
func (m *Manager) Reclaim(ctx context.Context, name string) error {
	hg, err := m.group(name)
	if err != nil {
		return err
	}
	if err := hg.inst.Reclaim(ctx); errors.Is(err, vrrp.ErrNotReleased) {
		return fmt.Errorf("ha group %s is not released (or is master again)", name)
	} else if err != nil {
		return err
	}
	return nil
}

// group is the running group name.
func (m *Manager) group(name string) (*group, error) {
	if groups := m.published.Load(); groups != nil {
		if hg := (*groups)[name]; hg != nil {
			return hg, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrNoGroup, name)
}

// SetAdmin sets the runtime admin states this node announces to its
// peers with its hellos; safe from any goroutine.
func (m *Manager) SetAdmin(entries []hello.AdminEntry) {
	m.admin.Store(&entries)
	if ep := m.helloEP.Load(); ep != nil {
		ep.SetAdmin(entries)
	}
}

// Hello is the running hello endpoint, nil when the hello is off.
func (m *Manager) Hello() *hello.Endpoint { return m.helloEP.Load() }

// Stop stops every group (a master sends priority 0 and releases its
// VIPs), closes the hello, and returns once the groups that hand their
// VIPs over have released them.
func (m *Manager) Stop() {
	var wg sync.WaitGroup
	for _, hg := range m.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hg.stop()
		}()
	}
	wg.Wait()
	m.groups = nil
	m.stopHello()
	m.holds.Wait()
}
