package sched

import "testing"

// TestMHFallbackSpreads takes one of ten backends down: mh rehashes its
// clients (IPVS mh-fallback) over the others rather than piling them on
// one neighbour, and maps them back when it returns.
func TestMHFallbackSpreads(t *testing.T) {
	t.Parallel()
	const n, down = 20000, 4
	p := evenPool(10)
	s := mustNew("mh", p.backends)
	key := hashKey("sh")
	var stranded []int
	for i := range n {
		if s.Pick(key(i)) == down {
			stranded = append(stranded, i)
		}
	}
	p.setUp(down, false)
	got := make([]int, 10)
	for _, i := range stranded {
		got[s.Pick(key(i))]++
	}
	if got[down] != 0 {
		t.Fatalf("%d keys still on the down backend", got[down])
	}
	for i, c := range got {
		// Each survivor should take about a ninth; a third of that is
		// far outside chance for ~2000 keys.
		if i != down && c < len(stranded)/27 {
			t.Errorf("survivor %d took %d of %d stranded keys, want about %d: %v", i, c, len(stranded), len(stranded)/9, got)
		}
	}
	p.setUp(down, true)
	for _, i := range stranded {
		if b := s.Pick(key(i)); b != down {
			t.Fatalf("key %d after the backend returned: got %d, want %d", i, b, down)
		}
	}
}
