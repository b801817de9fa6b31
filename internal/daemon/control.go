package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// Runtime control: the admin API's drain, disable, enable, weight, add,
// remove and reload (HAProxy's runtime API, ipvsadm -e/-a/-d).
//
// What survives a reload of the file: the admin state (drain, maint) of
// every backend that is still in the file, because it lives on the
// *balancer.Backend that the reload reuses. Runtime weights and backends
// added or removed at runtime are replaced by the file, as HAProxy
// without a state file does: the file stays the one source of truth that
// every node shares, and `fulcrum status` marks what differs from it.

var _ admin.Controller = (*Daemon)(nil)

// overlay is the set of backend changes made at runtime on top of the
// file. Owned by the Run goroutine.
type overlay struct {
	weights map[backendKey]int // file backends with a runtime weight
	removed map[backendKey]bool
	added   []addedBackend // in the order they were added
}

type addedBackend struct {
	service string
	b       config.Backend
}

func (o overlay) clone() overlay {
	n := overlay{weights: map[backendKey]int{}, removed: map[backendKey]bool{}, added: slices.Clone(o.added)}
	for k, v := range o.weights {
		n.weights[k] = v
	}
	for k, v := range o.removed {
		n.removed[k] = v
	}
	return n
}

// effective is file with the overlay's changes. file is not modified.
func (o overlay) effective(file *config.Config) *config.Config {
	if len(o.weights) == 0 && len(o.removed) == 0 && len(o.added) == 0 {
		return file
	}
	eff := *file
	eff.Services = slices.Clone(file.Services)
	for i := range eff.Services {
		sc := &eff.Services[i]
		var bs []config.Backend
		for _, b := range sc.Backends {
			k := backendKey{service: sc.Name, addr: netip.MustParseAddrPort(b.Address)}
			if o.removed[k] {
				continue
			}
			if w, ok := o.weights[k]; ok {
				b.Weight = &w
			}
			bs = append(bs, b)
		}
		for _, a := range o.added {
			if a.service == sc.Name {
				bs = append(bs, a.b)
			}
		}
		sc.Backends = bs
	}
	return &eff
}

// marks says, per backend key, how the running backend differs from the
// file: "added" or "weight". removed lists the file's backends removed at
// runtime, by service.
func (o overlay) marks() (map[backendKey]string, map[string][]string) {
	m := map[backendKey]string{}
	for k := range o.weights {
		m[k] = "weight"
	}
	for _, a := range o.added {
		m[backendKey{service: a.service, addr: netip.MustParseAddrPort(a.b.Address)}] = "added"
	}
	removed := map[string][]string{}
	for k := range o.removed {
		if m[k] == "added" {
			continue // removed, then added back with new settings
		}
		removed[k.service] = append(removed[k.service], k.addr.String())
	}
	for _, r := range removed {
		slices.Sort(r)
	}
	return m, removed
}

// do runs f on the Run goroutine, which owns the overlay and the running
// state, so that runtime changes and reloads never interleave.
func (d *Daemon) do(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	select {
	case d.ctlc <- func() { done <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup finds a primary or backup backend of a running service. The
// fallback server is not controllable: it only ever serves when nothing
// else can.
func (d *Daemon) lookup(service, address string) (*balancer.Service, *balancer.Backend, error) {
	addr, err := d.parseBackendAddr(service, address)
	if err != nil {
		return nil, nil, err
	}
	snap := d.snap.Load()
	if snap == nil {
		return nil, nil, fmt.Errorf("service %q: %w", service, admin.ErrNotFound)
	}
	// A service, or a route pool of an http service ("web/api").
	all := snap.services
	for _, ps := range snap.pools {
		all = slices.Concat(all, ps)
	}
	for _, svc := range all {
		if svc.Name != service {
			continue
		}
		for _, b := range slices.Concat(svc.Primary(), svc.Backup()) {
			if b.Addr == addr {
				return svc, b, nil
			}
		}
		return svc, nil, fmt.Errorf("service %s has no backend %s: %w", service, addr, admin.ErrNotFound)
	}
	return nil, nil, fmt.Errorf("service %q: %w", service, admin.ErrNotFound)
}

// notPool refuses the runtime changes that route pools do not take: their
// backends can be drained, disabled and enabled (SetAdminState), but their
// weights and membership come from the config file.
func notPool(service string) error {
	if strings.Contains(service, "/") {
		return fmt.Errorf("%s is a route pool: only drain, disable and enable work on its backends at runtime; weights and backends come from the config file: %w", service, admin.ErrInvalid)
	}
	return nil
}

// parseBackendAddr reads the ip:port of a backend of service. A backend
// of a director service may be given by its address alone, which takes
// the service's port (0 on a port-0 service), as in the config file.
func (d *Daemon) parseBackendAddr(service, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		var sc *config.Service
		if snap := d.snap.Load(); snap != nil {
			sc = snap.cfg.Service(service)
		}
		if aerr != nil || sc == nil || !sc.InKernel() {
			return netip.AddrPort{}, fmt.Errorf("backend address %q: want ip:port ([::1]:80 for IPv6): %w", s, admin.ErrInvalid)
		}
		ap = netip.AddrPortFrom(a, sc.ListenAddr().Port())
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("backend address %q: want no zone: %w", s, admin.ErrInvalid)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// SetAdminState drains, disables (maint) or enables a backend. It is
// safe from any goroutine: the state is an atomic on the backend.
func (d *Daemon) SetAdminState(ctx context.Context, service, address, state string) (admin.Backend, error) {
	st, err := balancer.ParseAdminState(state)
	if err != nil {
		return admin.Backend{}, fmt.Errorf("%w: %w", err, admin.ErrInvalid)
	}
	var out admin.Backend
	err = d.do(ctx, func() error {
		_, b, err := d.lookup(service, address)
		if err != nil {
			return err
		}
		prev := b.SetAdminState(st)
		if prev != st {
			d.log.Info("backend admin state changed", "service", service, "backend", b.Addr, "state", st, "prev_state", prev)
			d.syncKernel(b)
		}
		d.setAdminLocal(service, b, st)
		if st == balancer.AdminMaint {
			d.evictLater(b, d.evictTargets(b))
		}
		out = d.backendJSON(service, b)
		return nil
	})
	return out, err
}

// SetWeight gives a backend a runtime weight, until the next reload.
func (d *Daemon) SetWeight(ctx context.Context, service, address string, weight int) (admin.Backend, error) {
	if err := notPool(service); err != nil {
		return admin.Backend{}, err
	}
	if weight < 0 || weight > 65535 {
		return admin.Backend{}, fmt.Errorf("weight %d: want 0-65535: %w", weight, admin.ErrInvalid)
	}
	var out admin.Backend
	err := d.do(ctx, func() error {
		_, b, err := d.lookup(service, address)
		if err != nil {
			return err
		}
		next := d.overlay.clone()
		k := backendKey{service: service, addr: b.Addr}
		if i := next.addedIndex(k); i >= 0 {
			next.added[i].b.Weight = &weight
		} else {
			next.weights[k] = weight
		}
		prev := b.ConfiguredWeight()
		if err := d.applyRuntime(next); err != nil {
			return err
		}
		d.log.Info("backend weight set at runtime", "service", service, "backend", b.Addr, "weight", weight, "prev_weight", prev)
		out = d.backendJSON(service, b)
		return nil
	})
	return out, err
}

// AddBackend adds a backend to a running service, until the next reload.
// It gets the service's health check; until the check has a verdict it
// counts as up, or down with health.initial: down.
func (d *Daemon) AddBackend(ctx context.Context, service string, nb admin.NewBackend) (admin.Backend, error) {
	if err := notPool(service); err != nil {
		return admin.Backend{}, err
	}
	addr, err := d.parseBackendAddr(service, nb.Address)
	if err != nil {
		return admin.Backend{}, err
	}
	weight := 1
	if nb.Weight != nil {
		weight = *nb.Weight
	}
	if weight < 0 || weight > 65535 {
		return admin.Backend{}, fmt.Errorf("weight %d: want 0-65535: %w", weight, admin.ErrInvalid)
	}
	var out admin.Backend
	err = d.do(ctx, func() error {
		svc, b, err := d.lookup(service, addr.String())
		switch {
		case b != nil:
			return fmt.Errorf("service %s already has backend %s: %w", service, addr, admin.ErrInvalid)
		case svc == nil:
			return err
		}
		if fb := svc.Fallback(); fb != nil && fb.Addr == addr {
			return fmt.Errorf("%s is the fallback of service %s: %w", addr, service, admin.ErrInvalid)
		}
		next := d.overlay.clone()
		next.added = append(next.added, addedBackend{service: service, b: config.Backend{
			Address: addr.String(), Weight: &weight, Backup: nb.Backup,
		}})
		if err := d.applyRuntime(next); err != nil {
			return err
		}
		_, b, err = d.lookup(service, addr.String())
		if err != nil {
			return err
		}
		d.log.Info("backend added at runtime", "service", service, "backend", addr, "weight", weight, "backup", nb.Backup)
		out = d.backendJSON(service, b)
		return nil
	})
	return out, err
}

// RemoveBackend takes a backend out of a running service, until the next
// reload. Its established connections follow the service's rules for a
// backend that goes down: kept when quiescent, else closed after
// removal_grace (TCP, HTTP) or moved with the client's next datagram (UDP).
func (d *Daemon) RemoveBackend(ctx context.Context, service, address string) (admin.Backend, error) {
	if err := notPool(service); err != nil {
		return admin.Backend{}, err
	}
	var out admin.Backend
	err := d.do(ctx, func() error {
		svc, b, err := d.lookup(service, address)
		if err != nil {
			return err
		}
		if len(svc.Primary())+len(svc.Backup()) == 1 {
			return fmt.Errorf("backend %s is the last of service %s; a service needs at least one: %w", b.Addr, service, admin.ErrInvalid)
		}
		next := d.overlay.clone()
		k := backendKey{service: service, addr: b.Addr}
		delete(next.weights, k)
		if i := next.addedIndex(k); i >= 0 {
			next.added = slices.Delete(next.added, i, i+1)
		} else {
			next.removed[k] = true
		}
		out = d.backendJSON(service, b)
		targets := d.evictTargets(b) // before b leaves the snapshot
		if err := d.applyRuntime(next); err != nil {
			return err
		}
		// Nothing routes to b any more; maint evicts its traffic when the
		// service is not quiescent (UDP sessions move at their next
		// datagram).
		b.SetAdminState(balancer.AdminMaint)
		d.evictLater(b, targets)
		d.log.Info("backend removed at runtime", "service", service, "backend", b.Addr, "active", b.Active())
		out.AdminState = balancer.AdminMaint.String()
		return nil
	})
	return out, err
}

func (o overlay) addedIndex(k backendKey) int {
	for i, a := range o.added {
		if a.service == k.service && netip.MustParseAddrPort(a.b.Address) == k.addr {
			return i
		}
	}
	return -1
}

// backendJSON is b as the status shows it.
func (d *Daemon) backendJSON(service string, b *balancer.Backend) admin.Backend {
	for _, s := range d.Status().Services {
		if s.Name != service {
			continue
		}
		for _, x := range s.Backends {
			if x.Address == b.Addr.String() && x.Role != admin.RoleFallback {
				return x
			}
		}
	}
	return admin.Backend{Address: b.Addr.String(), AdminState: b.AdminState().String()}
}

// ReloadConfig is the admin API's reload: SIGHUP's, with the outcome.
func (d *Daemon) ReloadConfig(ctx context.Context) (string, error) {
	if err := d.Reload(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return "", err
		}
		return "", &admin.RejectedError{Errors: strings.Split(err.Error(), "\n")}
	}
	return d.snap.Load().hash, nil
}
