package proxy

import "sync/atomic"

// counters are the live Stats, updated with atomics from any goroutine.
type counters struct {
	accepted         atomic.Uint64
	active           atomic.Int64
	requests         atomic.Uint64
	badRequests      atomic.Uint64
	status           [6]atomic.Uint64
	upstreamConnects atomic.Uint64
	upstreamReuses   atomic.Uint64
	aborted          atomic.Uint64
	refused          atomic.Uint64
}

func (c *counters) stats() Stats {
	s := Stats{
		Connections:       c.accepted.Load(),
		ActiveConnections: uint64(max(c.active.Load(), 0)),
		Requests:          c.requests.Load(),
		BadRequests:       c.badRequests.Load(),
		UpstreamConnects:  c.upstreamConnects.Load(),
		UpstreamReuses:    c.upstreamReuses.Load(),
		Aborted:           c.aborted.Load(),
		Refused:           c.refused.Load(),
	}
	for i := range s.Status {
		s.Status[i] = c.status[i].Load()
	}
	return s
}

// countStatus counts a response sent to a client; 0 counts a request that
// got none.
func (c *counters) countStatus(status int) {
	i := status / 100
	if i < 0 || i >= len(c.status) {
		i = 0
	}
	c.status[i].Add(1)
}
