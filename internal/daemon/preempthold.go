package daemon

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// PreemptHold keeps a group whose VIPs carry director services from
// taking them back from a live master until this node can carry the
// master's flows on: its flow sync has received the table of every peer
// it asked (a join answered with its "done" entry), and its director
// forwards to every healthy backend of those services (a returning node
// resolves the next hops first; until then its rings leave them out and
// their flows would be scheduled elsewhere). A returning director that
// preempted before would send the master's pinned flows (persistence,
// flows whose backend is not the ring's), or those of an unresolved
// backend, to other backends, which reset them (docs/ha.md,
// "Fail-back"). Without director services on the VIPs nothing holds;
// without flow sync only the backends do. The ha group bounds the hold
// (ha.MaxPreemptHold).
func (h haHost) PreemptHold(vips []netip.Prefix) string {
	snap := h.d.snap.Load()
	if snap == nil {
		return ""
	}
	var unresolved []string
	director := false
	for _, svc := range snap.services {
		l := snap.fronts[svc.Name]
		if l == nil || (l.key.network != kernelTCP && l.key.network != kernelUDP) ||
			!slices.ContainsFunc(vips, func(v netip.Prefix) bool { return v.Addr() == l.key.addr.Addr().Unmap() }) {
			continue
		}
		director = true
		kf, ok := l.front.(*kernelFrontend)
		if !ok {
			continue
		}
		for _, b := range slices.Concat(svc.Primary(), svc.Backup()) {
			if why := notForwarded(kf, b); why != "" {
				unresolved = append(unresolved, fmt.Sprintf("%s %s (%s)", svc.Name, b.Addr, why))
			}
		}
	}
	if !director {
		return ""
	}
	var parts []string
	if sy := h.d.syncer.Load(); sy != nil {
		var waiting []string
		for _, p := range sy.Status().Peers {
			if p.Joined.IsZero() {
				waiting = append(waiting, cmp.Or(p.Node, p.Addr.String()))
			}
		}
		if len(waiting) > 0 {
			parts = append(parts, "waiting for the flow table of "+strings.Join(waiting, ", "))
		}
	}
	if len(unresolved) > 0 {
		parts = append(parts, "not yet forwarding to "+strings.Join(unresolved, ", "))
	}
	return strings.Join(parts, "; ")
}

// notForwarded is why the director does not forward to the healthy
// backend b of kf's service, "" when it does (or b is down: no ring
// has it).
func notForwarded(kf *kernelFrontend, b *balancer.Backend) (why string) {
	if !b.Healthy() {
		return ""
	}
	kf.with(func(ks KernelService) {
		if st := ks.BackendState(b); !st.Forwarding {
			why = st.Reason
		}
	})
	return why
}
