package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/l7/accesslog"
)

// stage is one part of making a config run. prepare opens or reads what
// the config needs without touching anything running; commit makes it
// run and cannot fail; rollback releases what prepare opened when another
// stage failed. Any of the three may be nil.
type stage struct {
	prepare  func() error
	commit   func()
	rollback func()
}

// runStages prepares every stage, so that one attempt reports every
// problem; if one failed, it rolls the prepared ones back, latest first,
// and returns the errors together: the running config is untouched. Else
// it commits them in order.
func runStages(stages ...stage) error {
	var errs []error
	var prepared []stage
	for _, s := range stages {
		if s.prepare != nil {
			if err := s.prepare(); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		prepared = append(prepared, s)
	}
	if len(errs) > 0 {
		for i := len(prepared) - 1; i >= 0; i-- {
			if prepared[i].rollback != nil {
				prepared[i].rollback()
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range stages {
		if s.commit != nil {
			s.commit()
		}
	}
	return nil
}

// apply makes cfg the running config, or changes nothing and returns why
// not. cfg is file with the runtime changes ov on top (cfg == file when
// there are none). Run goroutine only.
func (d *Daemon) apply(cfg, file *config.Config, ov overlay) error {
	p, err := buildPlan(cfg, d.backends, d.persist)
	if err != nil {
		return err
	}
	// Commit order matters: the frontends get complete engine configs
	// (logs), HA groups tracking a service find it published, and the
	// admin API answers only once there is a state to report (at start, a
	// status taken earlier would show no service at all).
	return runStages(
		d.backendStage(p, false),
		d.settingsStage(cfg),
		d.accessLogStage(p, cfg),
		d.directorStage(p, cfg),
		d.syncStage(p, cfg),
		d.listenerStage(p, cfg),
		d.directorCloseStage(p),
		d.publishStage(p, file, ov),
		d.haStage(cfg, file.Hash()),
		d.adminStage(cfg),
	)
}

// applyRuntime applies the file with the runtime changes next on top,
// touching only what they change: backends, their services, health
// watches only when backends come or go, and the frontends' snapshots.
// The admin token, access logs, alert hooks, admin listener and HA groups
// are left as they are. Run goroutine only.
func (d *Daemon) applyRuntime(next overlay) error {
	eff := next.effective(d.file)
	if err := eff.Validate(); err != nil {
		return fmt.Errorf("%w: %w", err, admin.ErrInvalid)
	}
	p, err := buildPlan(eff, d.backends, d.persist)
	if err != nil {
		return err
	}
	return runStages(
		d.backendStage(p, true),
		d.attachLogStage(p),
		d.directorStage(p, eff),
		d.syncStage(p, eff),
		d.listenerStage(p, eff),
		d.publishStage(p, d.file, next),
	)
}

// backendStage commits the plan's changes to live backends and its health
// watches. runtime skips the watches when the same ones remain (a weight
// change): the monitor and the passive observers are left alone.
func (d *Daemon) backendStage(p *plan, runtime bool) stage {
	return stage{commit: func() {
		for _, f := range p.commit {
			f()
		}
		if runtime {
			if cur := d.watches.Load(); cur != nil && sameKeys(*cur, p.watchInfo) {
				return
			}
		}
		d.commitHealth(p)
	}}
}

func sameKeys[V any](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// settingsStage applies what needs no resource: the admin token (read
// and checked by config.Load), alert hooks, log level.
func (d *Daemon) settingsStage(cfg *config.Config) stage {
	return stage{commit: func() {
		d.token.Store(cfg.Admin.Token)
		d.alerts.SetHooks(alertHooks(cfg))
		d.setLevel(cfg.Log.Level)
	}}
}

// accessLogStage opens the access logs that are new, and at commit
// reopens the ones kept (a reload is what logrotate's postrotate asks
// for) and gives every http engine config its writer.
func (d *Daemon) accessLogStage(p *plan, cfg *config.Config) stage {
	var fresh []*accesslog.Writer
	return stage{
		prepare: func() (err error) {
			fresh, err = d.logs.open(p, d.opt.Log.With("component", "accesslog"))
			return err
		},
		commit: func() { d.logs.commit(p, fresh, cfg.Shutdown.DrainTimeout.D(), d.log) },
		rollback: func() {
			for _, w := range fresh {
				w.Close()
			}
		},
	}
}

// attachLogStage gives the http engine configs the writers already open,
// without reopening them: a runtime change does not change access logs.
func (d *Daemon) attachLogStage(p *plan) stage {
	return stage{commit: func() { d.logs.attach(p) }}
}

// listenerStage binds the sockets of new listen addresses; at commit it
// starts their frontends, gives the others their new snapshot and drains
// the listeners no service wants any more.
func (d *Daemon) listenerStage(p *plan, cfg *config.Config) stage {
	want := map[listenKey]*balancer.Service{}
	planes := map[listenKey]string{}
	for _, svc := range p.services {
		plane := p.planeOf(svc)
		k := listenKey{network: dataPlanes[plane].network, addr: svc.Listen}
		want[k], planes[k] = svc, plane
	}
	var fresh []*listener
	return stage{
		prepare: func() error {
			var errs []error
			for k, svc := range want {
				plane := planes[k]
				if l := d.listeners[k]; l != nil {
					if l.protocol != plane {
						// The data planes cannot hand a socket over to each other.
						errs = append(errs, fmt.Errorf("service %s: changing %s between %s and %s needs a restart", svc.Name, k.addr, l.protocol, plane))
					}
					continue
				}
				var l *listener
				var err error
				if k.network == kernelTCP || k.network == kernelUDP {
					l, err = p.openKernel(k, plane, svc)
					if errors.Is(err, errNoDirector) {
						continue // the director stage says why
					}
				} else {
					l, err = bind(k, plane)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("service %s: %w", svc.Name, err))
					continue
				}
				fresh = append(fresh, l)
			}
			if len(errs) > 0 {
				d.closeSockets(fresh)
				fresh = nil
			}
			return errors.Join(errs...)
		},
		rollback: func() { d.closeSockets(fresh) },
		commit:   func() { d.commitListeners(p, cfg, want, fresh) },
	}
}

func (d *Daemon) closeSockets(ls []*listener) {
	for _, l := range ls {
		l.sock.close()
	}
}

func (d *Daemon) commitListeners(p *plan, cfg *config.Config, want map[listenKey]*balancer.Service, fresh []*listener) {
	for _, hp := range p.http {
		hp.cfg.Log = d.opt.Log.With("component", "l7", "service", hp.cfg.Name)
	}
	for _, l := range fresh {
		svc := want[l.key]
		l.front = dataPlanes[l.protocol].new(l.sock, p.snapshotOf(svc), d.opt.Log)
		d.listeners[l.key] = l
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := l.front.Serve(d.serveCtx); err != nil {
				l.failed.Store(true)
				d.log.Error("listener stopped", "listen", l.key.addr, "error", err)
			}
		}()
		if l.sock.kernel != nil {
			d.log.Info("forwarding in the kernel", "service", svc.Name, "vip", l.key.addr, "protocol", svc.Protocol, "forwarding", p.cfg.Service(svc.Name).Forwarding)
		} else {
			d.log.Info("listening", "service", svc.Name, "listen", l.key.addr, "protocol", svc.Protocol)
		}
	}
	p.fronts = map[string]*listener{}
	for k, l := range d.listeners {
		svc, ok := want[k]
		if !ok {
			delete(d.listeners, k)
			d.log.Info("closing listener, draining its connections", "listen", k.addr)
			l.front.StopAccepting()
			drain := cfg.Shutdown.DrainTimeout.D()
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), drain)
				defer cancel()
				_ = l.front.Drain(ctx)
			}()
			continue
		}
		l.front.Update(p.snapshotOf(svc))
		p.fronts[svc.Name] = l
	}
}

// adminStage binds the admin API's listener when its address changed.
func (d *Daemon) adminStage(cfg *config.Config) stage {
	var ln net.Listener
	return stage{
		prepare: func() (err error) {
			ln, err = d.bindAdmin(cfg.Admin.Listen)
			return err
		},
		rollback: func() {
			if ln != nil {
				ln.Close()
			}
		},
		commit: func() {
			if ln != nil {
				d.startAdmin(cfg.Admin.Listen, ln)
			} else if cfg.Admin.Listen == "off" && d.adminSrv != nil {
				d.stopAdmin()
			}
		},
	}
}

// publishStage makes the plan the running state and publishes the
// snapshot Status, control and the HA host read.
func (d *Daemon) publishStage(p *plan, file *config.Config, ov overlay) stage {
	return stage{commit: func() {
		d.backends = p.backends
		d.persist = p.persist
		d.file, d.overlay = file, ov
		marks, removed := ov.marks()
		pools := map[string][]*balancer.Service{}
		for name, hp := range p.http {
			pools[name] = hp.pools
		}
		d.snap.Store(&snapshot{
			cfg: p.cfg, hash: file.Hash(), runtime: marks, removed: removed,
			services: p.services, fronts: p.fronts, pools: pools, logs: d.logs.list(),
			director: p.director,
		})
		// A health transition between the backend stage's commit and
		// this snapshot found no director service to tell.
		refreshKernelFronts(p.fronts)
	}}
}

// haStage opens what the HA groups and the hello need; it commits last,
// so that a group tracking a service finds it published.
func (d *Daemon) haStage(cfg *config.Config, hash string) stage {
	var next *ha.Pending
	return stage{
		prepare: func() (err error) {
			next, err = d.ha.Prepare(cfg)
			return err
		},
		rollback: func() { next.Rollback() },
		commit: func() {
			next.Commit()
			d.ha.SetConfigHash(hash)
		},
	}
}
