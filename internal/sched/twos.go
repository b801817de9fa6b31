package sched

func init() { register("twos", newTwos) }

// twos is IPVS's power of twos choice (ip_vs_twos, Linux 6.3): draw two
// usable backends at random in proportion to their weights (the same one
// may come up twice) and take the one with the lighter active/weight.
// p2c draws its two uniformly and never the same one twice, so weights
// act only in the comparison there.
type twos struct {
	backends []Backend
}

var _ Scheduler = (*twos)(nil)

func newTwos(bs []Backend) Scheduler { return &twos{backends: bs} }

func (s *twos) Pick(k Key) int {
	r := randomOf(k)
	a := weightedDraw(s.backends, r)
	if a < 0 {
		return -1
	}
	b := weightedDraw(s.backends, Mix(r+golden))
	if b < 0 || b == a {
		return a
	}
	wa, wb := s.backends[a].Weight(), s.backends[b].Weight()
	if wa > 0 && wb > 0 && lighter(activeOf(s.backends[b]), uint64(wb), activeOf(s.backends[a]), uint64(wa)) {
		return b
	}
	return a
}
