package balancer

import (
	"net/netip"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	h.Observe(0)                      // first bucket
	h.Observe(500 * time.Microsecond) // bounds are inclusive
	h.Observe(501 * time.Microsecond) // second bucket
	h.Observe(7 * time.Millisecond)   // ≤10ms
	h.Observe(time.Minute)            // above every bound
	s := h.Snapshot()
	want := map[int]uint64{0: 2, 1: 1, 4: 1, len(LatencyBounds): 1}
	for i, c := range s.Counts {
		if c != want[i] {
			t.Errorf("bucket %d = %d, want %d", i, c, want[i])
		}
	}
	if s.Count != 5 {
		t.Errorf("count = %d, want 5", s.Count)
	}
	if wantSum := 500*time.Microsecond + 501*time.Microsecond + 7*time.Millisecond + time.Minute; s.Sum != wantSum {
		t.Errorf("sum = %v, want %v", s.Sum, wantSum)
	}
	var total HistogramSnapshot
	total.Add(s)
	total.Add(s)
	if total.Count != 10 || total.Counts[0] != 4 {
		t.Errorf("sum of two snapshots = %+v", total)
	}
}

func TestObserveRequest(t *testing.T) {
	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	b.ObserveRequest(false, time.Millisecond)
	b.ObserveRequest(true, time.Second)
	s := b.RequestStats()
	if s.Requests != 2 || s.Errors != 1 || s.Latency.Count != 2 {
		t.Fatalf("RequestStats = %+v", s)
	}
}

func TestObserveConnection(t *testing.T) {
	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	b.ObserveConnection(3 * time.Millisecond)
	b.ObserveConnection(time.Hour)
	s := b.ConnectionLifetimes()
	if s.Count != 2 || s.Counts[3] != 1 || s.Counts[len(LatencyBounds)] != 1 || s.Sum != time.Hour+3*time.Millisecond {
		t.Fatalf("ConnectionLifetimes = %+v", s)
	}
	if r := b.RequestStats(); r.Latency.Count != 0 {
		t.Errorf("request latency got %d observations from connections, want 0", r.Latency.Count)
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	be := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be.ObserveRequest(false, 3*time.Millisecond)
		}
	})
}
