package sched

func init() { register("p2c", newP2C) }

// p2c is the power of two choices: draw two distinct usable backends at
// random and take the one with the lighter active/weight. Sampling only two
// keeps picks O(1) and, unlike a full least-connection scan, keeps
// concurrent picks that read the same stale counts from all landing on the
// same backend.
type p2c struct {
	backends []Backend
}

var _ Scheduler = (*p2c)(nil)

func newP2C(bs []Backend) Scheduler {
	return &p2c{backends: bs}
}

// p2cDraws is how many random pairs to try before counting the usable
// backends; with most backends usable the first pair nearly always works.
const p2cDraws = 4

func (s *p2c) Pick(k Key) int {
	n := uint64(len(s.backends))
	switch n {
	case 0:
		return -1
	case 1:
		if usable(s.backends[0]) {
			return 0
		}
		return -1
	}
	r := randomOf(k)
	for range p2cDraws {
		a, b := pair(r, n)
		if usable(s.backends[a]) && usable(s.backends[b]) {
			return s.lighter(a, b)
		}
		r = Mix(r + golden)
	}

	// Most backends are unusable: draw ranks among the usable ones.
	var count uint64
	for _, b := range s.backends {
		if usable(b) {
			count++
		}
	}
	switch count {
	case 0:
		return -1
	case 1:
		return firstUsable(s.backends, 0)
	}
	ra, rb := pair(r, count)
	a, b := -1, -1
	var rank int
	for i, be := range s.backends {
		if !usable(be) {
			continue
		}
		if rank == ra {
			a = i
		}
		if rank == rb {
			b = i
		}
		rank++
	}
	switch {
	case a < 0 && b < 0:
		// Backends went down between the two passes.
		return firstUsable(s.backends, 0)
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return s.lighter(a, b)
}

// pair derives two distinct indices below n (n >= 2) from one random value.
func pair(r, n uint64) (int, int) {
	a := below(r, n)
	b := below(Mix(r), n-1)
	if b >= a {
		b++
	}
	return int(a), int(b)
}

func (s *p2c) lighter(a, b int) int {
	ba, bb := s.backends[a], s.backends[b]
	wa, wb := ba.Weight(), bb.Weight()
	if wa <= 0 {
		return b
	}
	if wb <= 0 {
		return a
	}
	if lighter(activeOf(bb), uint64(wb), activeOf(ba), uint64(wa)) {
		return b
	}
	return a
}
