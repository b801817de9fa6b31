package sched

func init() { register("random", newRandom) }

// random picks a usable backend at random, each with probability
// proportional to its weight.
type random struct {
	backends []Backend
}

var _ Scheduler = (*random)(nil)

func newRandom(bs []Backend) Scheduler {
	return &random{backends: bs}
}

func (s *random) Pick(k Key) int {
	return weightedDraw(s.backends, randomOf(k))
}

// weightedDraw maps the random value r onto a usable backend of bs, each
// with probability proportional to its weight; -1 if none is usable.
func weightedDraw(bs []Backend, r uint64) int {
	var total uint64
	for _, b := range bs {
		if usable(b) {
			total += uint64(b.Weight())
		}
	}
	if total == 0 {
		return -1
	}
	r = below(r, total)
	last := -1
	for i, b := range bs {
		if !usable(b) {
			continue
		}
		w := uint64(b.Weight())
		if r < w {
			return i
		}
		r -= w
		last = i
	}
	// Weights shrank between the two passes; any usable backend will do.
	return last
}
