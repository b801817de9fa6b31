package daemon

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// evictTarget is a frontend carrying traffic of a backend that must leave
// it, and how long that traffic may stay.
type evictTarget struct {
	service string
	front   Frontend
	grace   time.Duration
}

// evictTargets lists the frontends of the running services that b serves
// (as a backend of the service or of one of its route pools) and that are
// not quiescent. Call it while b is still in the snapshot: a backend
// removed at runtime is in none of the next one's services.
func (d *Daemon) evictTargets(b *balancer.Backend) []evictTarget {
	snap := d.snap.Load()
	if snap == nil {
		return nil
	}
	var out []evictTarget
	for _, svc := range snap.services {
		l := snap.fronts[svc.Name]
		if l == nil || svc.Quiescent || !snap.owns(svc, b) {
			continue
		}
		t := evictTarget{service: svc.Name, front: l.front}
		if sc := snap.cfg.Service(svc.Name); sc != nil {
			t.grace = sc.RemovalGrace.D()
		}
		out = append(out, t)
	}
	return out
}

// evictLater is the one rule for a backend taken out of a service that is
// not quiescent — its health check failed, it went into maintenance or it
// was removed at runtime: once the service's removal_grace has passed,
// its established traffic on every target is closed, unless it returned
// to service meanwhile (it is no longer Evicted).
func (d *Daemon) evictLater(b *balancer.Backend, targets []evictTarget) {
	for _, t := range targets {
		time.AfterFunc(t.grace, func() {
			if !b.Evicted() {
				return
			}
			if n := t.front.CloseBackend(b); n > 0 {
				d.log.Info("closed connections of a removed backend", "service", t.service, "backend", b.Addr, "connections", n)
			}
		})
	}
}
