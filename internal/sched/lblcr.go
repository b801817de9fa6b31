package sched

import (
	"math/bits"
	"time"
)

func init() { register("lblcr", newLBLCR) }

// replicaTTL is how long a destination's server set must go unchanged
// before lblcr drops its busiest member. IPVS defaults this to a day
// (lblcr_expiration); a set that has not needed to grow for as long as an
// idle entry lives has more servers than its load needs, so the entry
// lifetime is used instead.
const replicaTTL = localityTTL

// lblcr, locality-based least-connection with replication, is lblc with a
// set of servers per destination instead of one, for destinations too hot
// for a single cache node. A connection goes to the least loaded usable
// member (by wlc); when even that one is overloaded, wlc picks a server
// from the whole pool and it joins the set. A set that has not changed
// for replicaTTL loses its most loaded member, so it shrinks back as the
// load falls.
type lblcr struct {
	backends []Backend
	words    int // uint64s per member bitmap
	table    *localityTable[replicas]
	start    rotor
}

// replicas is one destination's server set.
type replicas struct {
	lastMod time.Duration
	// members is a bitmap over backend indices; it is allocated with its
	// table slot and reused by whatever destination takes the slot over.
	members []uint64
}

var _ Scheduler = (*lblcr)(nil)

func newLBLCR(bs []Backend) Scheduler {
	return &lblcr{
		backends: bs,
		words:    (len(bs) + 63) / 64,
		table:    newLocalityTable[replicas](),
	}
}

func (s *lblcr) Pick(k Key) int {
	if len(s.backends) == 0 {
		return -1
	}
	now := s.table.now()
	sh, set := s.table.locate(k.Dest)

	sh.mu.Lock()
	i := -1
	if e := sh.find(set, k.Dest, now); e != nil {
		e.lastUse = now
		r := &e.v
		i = s.least(r.members)
		if now-r.lastMod > replicaTTL && count(r.members) > 1 {
			if m := s.most(r.members); m >= 0 {
				r.members[m/64] &^= 1 << (m % 64)
				r.lastMod = now
			}
		}
	}
	sh.mu.Unlock()
	// Checking load scans every backend; do it outside the lock.
	if i >= 0 && !overloaded(s.backends, i) {
		return i
	}

	i = leastLoaded(s.backends, s.start.next(len(s.backends)), byActivePerWeight)
	if i < 0 {
		return -1
	}
	sh.mu.Lock()
	e, fresh := sh.claim(set, k.Dest, now)
	r := &e.v
	if fresh {
		if r.members == nil {
			r.members = make([]uint64, s.words)
		} else {
			clear(r.members)
		}
	}
	if w, bit := i/64, uint64(1)<<(i%64); r.members[w]&bit == 0 {
		r.members[w] |= bit
		r.lastMod = now
	}
	sh.mu.Unlock()
	return i
}

// least returns the usable member with the least active/weight, or -1.
func (s *lblcr) least(members []uint64) int {
	best := -1
	var bestLoad, bestWeight uint64
	for w, word := range members {
		for ; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			b := s.backends[i]
			if !b.Available() {
				continue
			}
			wt := b.Weight()
			if wt <= 0 {
				continue
			}
			load := activeOf(b)
			if best < 0 || lighter(load, uint64(wt), bestLoad, bestWeight) {
				best, bestLoad, bestWeight = i, load, uint64(wt)
			}
		}
	}
	return best
}

// most returns the member to drop when the set shrinks: an unusable one
// if there is any, since it serves nobody, else the one with the most
// active/weight.
func (s *lblcr) most(members []uint64) int {
	worst := -1
	var worstLoad, worstWeight uint64
	for w, word := range members {
		for ; word != 0; word &= word - 1 {
			i := w*64 + bits.TrailingZeros64(word)
			b := s.backends[i]
			wt := b.Weight()
			if !b.Available() || wt <= 0 {
				return i
			}
			load := activeOf(b)
			if worst < 0 || lighter(worstLoad, worstWeight, load, uint64(wt)) {
				worst, worstLoad, worstWeight = i, load, uint64(wt)
			}
		}
	}
	return worst
}

func count(members []uint64) int {
	n := 0
	for _, w := range members {
		n += bits.OnesCount64(w)
	}
	return n
}
