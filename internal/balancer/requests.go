package balancer

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the latency histogram's buckets,
// from half a millisecond to ten seconds; a last, implicit bucket holds
// everything slower. Fixed so that recording is a scan and an atomic add,
// and so that every backend's histogram can be summed.
var LatencyBounds = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// Histogram counts durations into LatencyBounds' buckets. The zero value is
// ready; Observe is lock-free and allocation-free.
type Histogram struct {
	buckets [len(LatencyBounds) + 1]atomic.Uint64 // not cumulative
	sum     atomic.Int64                          // nanoseconds
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a copy of a Histogram: Counts[i] observations were
// at most LatencyBounds[i] and above the bound before it; the last count is
// above every bound.
type HistogramSnapshot struct {
	Counts [len(LatencyBounds) + 1]uint64
	Count  uint64
	Sum    time.Duration
}

// Snapshot copies h. Concurrent Observes may be half-seen (a bucket counted
// but not yet its sum); scrapes tolerate that.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.buckets {
		s.Counts[i] = h.buckets[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Add sums o into s, for totals over backends.
func (s *HistogramSnapshot) Add(o HistogramSnapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Count += o.Count
	s.Sum += o.Sum
}

// requestStats are the per-request counters of an HTTP service's backend.
type requestStats struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	latency  Histogram
}

// ObserveRequest counts one request relayed to b (or attempted): failed is
// a connect failure, a timeout, a broken or invalid response or a 5xx;
// d runs from picking b to the end of the response.
func (b *Backend) ObserveRequest(failed bool, d time.Duration) {
	b.req.requests.Add(1)
	if failed {
		b.req.errors.Add(1)
	}
	b.req.latency.Observe(d)
}

// RequestStats is a copy of b's per-request counters.
type RequestStats struct {
	Requests uint64
	Errors   uint64
	Latency  HistogramSnapshot
}

// RequestStats reads b's per-request counters.
func (b *Backend) RequestStats() RequestStats {
	return RequestStats{
		Requests: b.req.requests.Load(),
		Errors:   b.req.errors.Load(),
		Latency:  b.req.latency.Snapshot(),
	}
}

// ObserveConnection records how long a relayed TCP connection lived, from
// the backend's connect to the close of both directions. Connections
// longer than the last bound (10s) are counted in the overflow bucket.
func (b *Backend) ObserveConnection(d time.Duration) { b.lifetimes.Observe(d) }

// ConnectionLifetimes is a copy of the histogram ObserveConnection fills.
func (b *Backend) ConnectionLifetimes() HistogramSnapshot { return b.lifetimes.Snapshot() }
