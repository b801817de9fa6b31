package ha

import (
	"log/slog"
	"time"
)

// MaxPreemptHold bounds how long Host.PreemptHold keeps a group from
// preempting after it started: a peer that never answers (down, or cut
// off) must not leave the VIPs on a lower-priority master for good.
const MaxPreemptHold = 10 * time.Second

// preemptHold is the group's vrrp.Config.PreemptHold: the host's reason
// to leave the live master in place, until MaxPreemptHold after the
// group started. Reaching the bound is logged once (the instance logs
// the hold's start and end).
func (hg *group) preemptHold(host Host, log *slog.Logger) string {
	why := host.PreemptHold(hg.vips)
	if why == "" {
		return ""
	}
	if time.Since(hg.started) >= MaxPreemptHold {
		if hg.holdOver.CompareAndSwap(false, true) {
			log.Warn("preemption no longer held back: bound reached", "bound", MaxPreemptHold, "reason", why)
		}
		return ""
	}
	return why
}

// preemptHoldUntil is when the group's preempt hold ends at the latest.
func (hg *group) preemptHoldUntil() time.Time { return hg.started.Add(MaxPreemptHold) }
