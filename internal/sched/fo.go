package sched

func init() { register("fo", newHighestWeight(false)) }

// highestWeight sends every connection to the usable backend of highest
// weight; of equals, the first in the list wins, so traffic stays on one
// backend until it becomes unusable or another outweighs it. IPVS fo
// (weighted failover) and ovf (overflow) are this rule; ovf also passes
// over a backend whose active connections exceed its weight, so the
// weight reads as a connection capacity and the excess overflows to the
// next backend.
type highestWeight struct {
	backends []Backend
	overflow bool
}

var _ Scheduler = (*highestWeight)(nil)

func newHighestWeight(overflow bool) Factory {
	return func(bs []Backend) Scheduler {
		return &highestWeight{backends: bs, overflow: overflow}
	}
}

func (s *highestWeight) Pick(Key) int {
	best, bestWeight := -1, 0
	for i, b := range s.backends {
		if !usable(b) {
			continue
		}
		w := b.Weight()
		if s.overflow && b.Active() > int64(w) {
			continue
		}
		if w > bestWeight {
			best, bestWeight = i, w
		}
	}
	return best
}
