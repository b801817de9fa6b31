package sched

func init() { register("lblc", newLBLC) }

// lblc, locality-based least-connection, sends every connection for one
// destination (Key.Dest) to the same server, so a cache cluster keeps each
// object on one node. A destination is assigned by wlc and stays put
// until its server becomes unusable or overloaded (see overloaded), when
// it is assigned afresh.
type lblc struct {
	backends []Backend
	table    *localityTable[int]
	start    rotor
}

var _ Scheduler = (*lblc)(nil)

func newLBLC(bs []Backend) Scheduler {
	return &lblc{backends: bs, table: newLocalityTable[int]()}
}

func (s *lblc) Pick(k Key) int {
	if len(s.backends) == 0 {
		return -1
	}
	now := s.table.now()
	sh, set := s.table.locate(k.Dest)

	sh.mu.Lock()
	i := -1
	if e := sh.find(set, k.Dest, now); e != nil {
		e.lastUse = now
		i = e.v
	}
	sh.mu.Unlock()
	// Checking load scans every backend; do it outside the lock.
	if i >= 0 && usable(s.backends[i]) && !overloaded(s.backends, i) {
		return i
	}

	i = leastLoaded(s.backends, s.start.next(len(s.backends)), byActivePerWeight)
	if i < 0 {
		return -1
	}
	sh.mu.Lock()
	e, _ := sh.claim(set, k.Dest, now)
	e.v = i
	sh.mu.Unlock()
	return i
}
