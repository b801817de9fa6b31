package daemon

import (
	"context"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
)

// haHost answers the HA groups' questions about the running services
// from the published snapshot: safe from any goroutine.
type haHost struct{ d *Daemon }

var _ ha.Host = haHost{}

// ServiceAlive reports whether a tracked service can serve: its listener
// is up and at least one backend (primary or backup) is healthy — of its
// own or, for an http service, of one of its route pools. Tracking follows
// health, not admin state: a backend drained or disabled by an operator
// (or at weight 0, or full) is still there, and the same change made on
// this node does not reach the peer, so moving the VIP for it would only
// hand its traffic to a node that serves the backend anyway.
func (h haHost) ServiceAlive(name string) (bool, string) {
	snap := h.d.snap.Load()
	if snap == nil {
		return false, "not running"
	}
	for _, svc := range snap.services {
		if svc.Name != name {
			continue
		}
		if l := snap.fronts[name]; l == nil || l.failed.Load() {
			return false, "listener failed"
		}
		for _, s := range append([]*balancer.Service{svc}, snap.pools[name]...) {
			if anyHealthy(s.Primary()) || anyHealthy(s.Backup()) {
				return true, ""
			}
		}
		return false, "no healthy backend"
	}
	return false, "no such service"
}

func anyHealthy(bs []*balancer.Backend) bool {
	for _, b := range bs {
		if b.Healthy() {
			return true
		}
	}
	return false
}

// Busy reports whether connections to the VIPs are in flight on this
// node: a service listening on one of them, or on every address, has one.
func (h haHost) Busy(vips []netip.Prefix) bool {
	busy := false
	h.d.vipListeners(vips, func(l *listener) { busy = busy || l.front.Active() > 0 })
	return busy
}

// SetReleasing turns keep-alive off or on for the services on the VIPs
// (Frontend.SetReleasing).
func (h haHost) SetReleasing(vips []netip.Prefix, on bool) {
	h.d.vipListeners(vips, func(l *listener) { l.front.SetReleasing(on) })
}

// vipListeners calls fn for each listener of the running config on one of
// the VIPs or on every address.
func (d *Daemon) vipListeners(vips []netip.Prefix, fn func(*listener)) {
	snap := d.snap.Load()
	if snap == nil {
		return
	}
	for _, l := range snap.fronts {
		a := l.key.addr.Addr().Unmap()
		on := a.IsUnspecified()
		for _, v := range vips {
			on = on || v.Addr() == a
		}
		if on {
			fn(l)
		}
	}
}

// ReleaseGroup hands the group's VIPs over to a peer (`fulcrum ha
// release`); ha.ErrNoGroup for an unknown group. It is safe from any
// goroutine.
func (d *Daemon) ReleaseGroup(ctx context.Context, name string) error {
	return d.ha.Release(ctx, name)
}

// ReclaimGroup undoes ReleaseGroup (`fulcrum ha reclaim`).
func (d *Daemon) ReclaimGroup(ctx context.Context, name string) error {
	return d.ha.Reclaim(ctx, name)
}
