package sched

func init() { register("lc", newLeastConn(byActive)) }

// leastConn sends a connection to the usable backend with the lightest
// load under its rule; lc, wlc, sed and nq differ only in the rule. Each
// pick starts its scan one backend further on, so backends that tie (all
// idle at startup, say) take turns instead of index 0 taking everything.
//
// IPVS counts a backend's load as active*256 + inactive connections; a
// proxy has no inactive connections, so only active ones count here.
type leastConn struct {
	backends []Backend
	rule     loadRule
	start    rotor
}

var _ Scheduler = (*leastConn)(nil)

func newLeastConn(rule loadRule) Factory {
	return func(bs []Backend) Scheduler {
		return &leastConn{backends: bs, rule: rule}
	}
}

func (s *leastConn) Pick(Key) int {
	if len(s.backends) == 0 {
		return -1
	}
	return leastLoaded(s.backends, s.start.next(len(s.backends)), s.rule)
}
