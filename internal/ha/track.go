package ha

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/health"
	"github.com/fulcrum-lb/fulcrum/internal/runner"
)

// trackEvery is how often services and interfaces are re-evaluated: cheap
// reads of atomics and one netlink query, so a dead service lowers the
// priority within a fraction of a second.
const trackEvery = 100 * time.Millisecond

// track evaluates what hg tracks until ctx is done and applies the
// result (with its sync group's) to the instances.
func (m *Manager) track(ctx context.Context, hg *group) {
	t := &hg.cfg.Track
	if len(t.Services)+len(t.Interfaces)+len(t.Scripts)+len(t.Ping) == 0 {
		return
	}
	// Scripts and pings are slow: they run on their own rhythm and leave
	// their last verdict here.
	slow := make([]atomic.Pointer[trackItem], len(t.Scripts)+1)
	if len(t.Scripts)+len(t.Ping) > 0 {
		go m.trackSlow(ctx, hg, slow)
	}
	tick := time.NewTicker(trackEvery)
	defer tick.Stop()
	for {
		res := &trackResult{}
		for _, name := range t.Services {
			ok, detail := m.opt.Host.ServiceAlive(name)
			res.add(trackItem{kind: "service", name: name, ok: ok, weight: t.Weight, detail: detail})
		}
		for _, ifname := range t.Interfaces {
			up, err := m.opt.Deps.LinkUp(ifname)
			detail := ""
			if err != nil {
				detail = err.Error()
			} else if !up {
				detail = "link down"
			}
			res.add(trackItem{kind: "interface", name: ifname, ok: up && err == nil, weight: t.Weight, detail: detail})
		}
		for i := range slow {
			if it := slow[i].Load(); it != nil {
				res.add(*it)
			}
		}
		hg.track.Store(res)
		m.applyTracking()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *trackResult) add(it trackItem) {
	r.items = append(r.items, it)
	if it.ok {
		return
	}
	if it.weight == 0 {
		r.fault = true
	} else {
		r.delta += it.weight
	}
}

// trackSlow runs scripts and pings every track interval; slot i < n holds
// script i, the last slot the ping verdict.
func (m *Manager) trackSlow(ctx context.Context, hg *group, slots []atomic.Pointer[trackItem]) {
	t := &hg.cfg.Track
	tick := time.NewTicker(t.Interval.D())
	defer tick.Stop()
	for {
		for i, s := range t.Scripts {
			ok, detail := runTrackScript(ctx, s)
			slots[i].Store(&trackItem{kind: "script", name: s.Command[0], ok: ok, weight: s.Weight, detail: detail})
		}
		if len(t.Ping) > 0 {
			ok, detail := pingAny(ctx, t.Ping, t.Interval.D(), min(t.Interval.D(), time.Second))
			slots[len(t.Scripts)].Store(&trackItem{kind: "ping", name: fmt.Sprint(t.Ping), ok: ok, weight: t.Weight, detail: detail})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func runTrackScript(ctx context.Context, s config.TrackScript) (bool, string) {
	res, err := runner.Run(ctx, runner.Command{Argv: s.Command, Timeout: s.Timeout.D(), KillLeftovers: true, OutputLimit: 512})
	switch {
	case errors.Is(err, runner.ErrTimeout):
		return false, "timeout after " + s.Timeout.String()
	case err != nil:
		return false, err.Error()
	case res.ExitCode != 0:
		return false, res.Err().Error()
	}
	return true, ""
}

// pingAny checks the targets with the health checkers' ping and reports
// whether any answered within timeout (heartbeat's ipfail: the node still
// sees its network).
func pingAny(ctx context.Context, targets []string, interval, timeout time.Duration) (bool, string) {
	c, err := health.NewChecker(health.Spec{Type: "ping", Interval: interval, Timeout: timeout, Rise: 1, Fall: 1})
	if err != nil {
		return false, err.Error()
	}
	var lastErr error
	for _, t := range targets {
		a, err := netip.ParseAddr(t)
		if err != nil {
			continue
		}
		if err := c.Check(ctx, health.Target{Addr: netip.AddrPortFrom(a, 0)}); err != nil {
			lastErr = err
			continue
		}
		return true, ""
	}
	return false, fmt.Sprintf("no answer from %v: %v", targets, lastErr)
}

// applyTracking combines each group's tracking with its sync group's
// (a fault in one is a fault in all; the largest priority cut applies to
// all) and hands the result to the instances. Safe from any goroutine:
// the instance setters are atomic and idempotent.
func (m *Manager) applyTracking() {
	groups := m.published.Load()
	if groups == nil {
		return
	}
	syncOf := map[string][]string{}
	if sg := m.syncGroups.Load(); sg != nil {
		for _, s := range *sg {
			for _, g := range s.Groups {
				syncOf[g] = s.Groups
			}
		}
	}
	for name, hg := range *groups {
		members := syncOf[name]
		if members == nil {
			members = []string{name}
		}
		delta, fault := 0, false
		for _, m := range members {
			if other := (*groups)[m]; other != nil {
				r := other.track.Load()
				delta = max(delta, r.delta)
				fault = fault || r.fault
			}
		}
		hg.inst.SetPriorityDelta(-delta)
		hg.inst.SetFault(fault)
	}
}
