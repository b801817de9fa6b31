package sched

import "sync/atomic"

func init() { register("rr", newRoundRobin) }

// roundRobin hands connections to usable backends in turn.
//
// Like IPVS it remembers where the last pick landed rather than counting
// picks: a plain counter would send an unusable backend's turn to its
// neighbour, which would then get twice the share of every other backend.
// The position moves with a compare-and-swap, so picks never lock.
type roundRobin struct {
	backends []Backend
	pos      atomic.Uint64 // where the next scan starts, modulo len(backends)
}

var _ Scheduler = (*roundRobin)(nil)

func newRoundRobin(bs []Backend) Scheduler {
	return &roundRobin{backends: bs}
}

func (r *roundRobin) Pick(Key) int {
	n := uint64(len(r.backends))
	if n == 0 {
		return -1
	}
	for {
		p := r.pos.Load()
		i := firstUsable(r.backends, int(p%n))
		if i < 0 {
			return -1
		}
		if r.pos.CompareAndSwap(p, uint64(i)+1) {
			return i
		}
	}
}
