package sched

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

// usable reports whether b may be picked. Backend implementations fold a
// zero weight into Available, but weighted arithmetic must never see a
// non-positive weight, so every scheduler checks both.
func usable(b Backend) bool {
	return b.Available() && b.Weight() > 0
}

// firstUsable returns the first usable backend at or after start, wrapping
// around, or -1.
func firstUsable(bs []Backend, start int) int {
	n := len(bs)
	for j := range n {
		i := start + j
		if i >= n {
			i -= n
		}
		if usable(bs[i]) {
			return i
		}
	}
	return -1
}

// clampWeight narrows a weight to what precomputed layouts store; negative
// weights count as zero.
func clampWeight(w int) int32 {
	if w <= 0 {
		return 0
	}
	return int32(min(w, math.MaxInt32))
}

// activeOf reads b's in-flight count. A counter caught mid-update must
// not turn into a huge unsigned load.
func activeOf(b Backend) uint64 {
	return uint64(max(b.Active(), 0))
}

// lighter reports whether load a1 at weight w1 is strictly lighter than a2
// at weight w2, that is a1/w1 < a2/w2. It cross-multiplies, as IPVS does,
// but in 128 bits so that no count or weight can overflow it.
func lighter(a1, w1, a2, w2 uint64) bool {
	h1, l1 := bits.Mul64(a1, w2)
	h2, l2 := bits.Mul64(a2, w1)
	return h1 < h2 || h1 == h2 && l1 < l2
}

// loadRule says how the least-connection family weighs a backend.
type loadRule uint8

const (
	// byActive compares in-flight counts and ignores weights (lc).
	byActive loadRule = iota
	// byActivePerWeight compares active/weight (wlc, lblc, lblcr).
	byActivePerWeight
	// byExpectedDelay compares (active+1)/weight: the delay a new
	// connection expects once it joins the backend's queue (sed).
	byExpectedDelay
	// byNeverQueue takes any idle backend at once, else behaves like
	// byExpectedDelay (nq).
	byNeverQueue
)

// leastLoaded returns the usable backend with the lightest load under rule,
// or -1. It scans from start and keeps the first of equals, so callers that
// rotate start spread ties over all backends instead of piling them onto
// index 0.
func leastLoaded(bs []Backend, start int, rule loadRule) int {
	best := -1
	var bestLoad, bestWeight uint64
	n := len(bs)
	for j := range n {
		i := start + j
		if i >= n {
			i -= n
		}
		b := bs[i]
		if !b.Available() {
			continue
		}
		w := b.Weight()
		if w <= 0 {
			continue
		}
		load, weight := activeOf(b), uint64(w)
		switch rule {
		case byActive:
			weight = 1
		case byNeverQueue:
			if load == 0 {
				return i
			}
			load++
		case byExpectedDelay:
			load++
		}
		if best < 0 || lighter(load, weight, bestLoad, bestWeight) {
			best, bestLoad, bestWeight = i, load, weight
		}
	}
	return best
}

// rotor hands out scan start positions in turn. It only spreads ties, so
// it is a plain counter shared by all picks of one scheduler.
type rotor struct{ n atomic.Uint64 }

func (r *rotor) next(n int) int {
	return int(r.n.Add(1) % uint64(n))
}

// randomOf returns k.Rand, or a fresh random value when the caller left it
// zero. math/rand/v2's top-level generator is per-P and does not allocate.
func randomOf(k Key) uint64 {
	if k.Rand != 0 {
		return k.Rand
	}
	return rand.Uint64()
}

// below maps a uniformly random x onto [0, n) without a division and
// without the bias of x % n worth caring about for n far below 2^64.
func below(x, n uint64) uint64 {
	hi, _ := bits.Mul64(x, n)
	return hi
}

// golden is 2^64 divided by the golden ratio; adding multiples of it to a
// key before Mix yields a sequence of independent-looking probes.
const golden = 0x9e3779b97f4a7c15

// overloaded reports whether backend i carries more connections than its
// weight while some other usable backend is below half of its own. This is
// the test IPVS lblc and lblcr use to leave a destination's server: weights
// there are read as a connection capacity.
func overloaded(bs []Backend, i int) bool {
	if bs[i].Active() <= int64(bs[i].Weight()) {
		return false
	}
	for _, d := range bs {
		if usable(d) && d.Active()*2 < int64(d.Weight()) {
			return true
		}
	}
	return false
}
