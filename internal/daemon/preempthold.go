package daemon

import (
	"cmp"
	"net/netip"
	"strings"
)

// PreemptHold keeps a group whose VIPs carry director services from
// taking them back from a live master while the flow sync has not yet
// received the table of every peer it asked (a join answered with its
// "done" entry). A returning director that preempted before would send
// the master's pinned flows (persistence, flows whose backend is not the
// ring's) to the ring's backends, which reset them (docs/ha.md,
// "Fail-back"). Without flow sync, or without director services on the
// VIPs, nothing holds. The ha group bounds the hold (ha.MaxPreemptHold).
func (h haHost) PreemptHold(vips []netip.Prefix) string {
	director := false
	h.d.vipListeners(vips, func(l *listener) {
		director = director || l.key.network == kernelTCP || l.key.network == kernelUDP
	})
	if !director {
		return ""
	}
	sy := h.d.syncer.Load()
	if sy == nil {
		return ""
	}
	var waiting []string
	for _, p := range sy.Status().Peers {
		if p.Joined.IsZero() {
			waiting = append(waiting, cmp.Or(p.Node, p.Addr.String()))
		}
	}
	if len(waiting) == 0 {
		return ""
	}
	return "waiting for the flow table of " + strings.Join(waiting, ", ")
}
