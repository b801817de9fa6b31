package sched

import "testing"

// highestWeightCase is one state of a pool and the pick fo or ovf must
// make in it.
type highestWeightCase struct {
	name    string
	weights []int
	active  []int64
	down    []int
	want    int
}

func testHighestWeight(t *testing.T, algo string, tests []highestWeightCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			p.setActive(tt.active...)
			for _, i := range tt.down {
				p.setUp(i, false)
			}
			s := mustNew(algo, p.backends)
			for k := range 20 {
				if got := s.Pick(keyN(k)); got != tt.want {
					t.Fatalf("pick %d: got %d, want %d", k, got, tt.want)
				}
			}
		})
	}
}

func TestFailover(t *testing.T) {
	t.Parallel()
	testHighestWeight(t, "fo", []highestWeightCase{
		{name: "highest weight", weights: []int{1, 5, 3}, want: 1},
		{name: "load does not matter", weights: []int{1, 5, 3}, active: []int64{0, 1000, 0}, want: 1},
		{name: "equal weights: the first", weights: []int{2, 5, 5}, want: 1},
		{name: "highest down: next highest", weights: []int{1, 5, 3}, down: []int{1}, want: 2},
		{name: "weight zero is skipped", weights: []int{0, 0, 1}, want: 2},
		{name: "all down", weights: []int{1, 5}, down: []int{0, 1}, want: -1},
		{name: "no backends", want: -1},
	})
}

func TestOverflow(t *testing.T) {
	t.Parallel()
	testHighestWeight(t, "ovf", []highestWeightCase{
		{name: "highest weight while below its weight", weights: []int{1, 5, 3}, active: []int64{0, 4, 0}, want: 1},
		{name: "at its weight it still takes one more (IPVS: active > weight overflows)", weights: []int{1, 5, 3}, active: []int64{0, 5, 0}, want: 1},
		{name: "above its weight: next highest", weights: []int{1, 5, 3}, active: []int64{0, 6, 0}, want: 2},
		{name: "two over: the third", weights: []int{1, 5, 3}, active: []int64{0, 6, 4}, want: 0},
		{name: "equal weights: the first not over", weights: []int{5, 5}, active: []int64{6, 0}, want: 1},
		{name: "every one over: none", weights: []int{1, 2}, active: []int64{2, 3}, want: -1},
		{name: "down is skipped", weights: []int{1, 5}, down: []int{1}, want: 0},
	})
}

// TestOverflowFills opens connections one at a time through ovf, as a
// proxy would, and checks they fill the backends in weight order.
func TestOverflowFills(t *testing.T) {
	t.Parallel()
	p := newPool(2, 4, 1)
	s := mustNew("ovf", p.backends)
	var got []int
	for k := range 10 {
		i := s.Pick(keyN(k))
		got = append(got, i)
		if i >= 0 {
			p.fakes[i].active.Add(1)
		}
	}
	// Backend 1 (weight 4) takes 5, backend 0 (weight 2) 3, backend 2
	// (weight 1) 2; then everyone is over.
	want := []int{1, 1, 1, 1, 1, 0, 0, 0, 2, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picks: got %v, want %v", got, want)
		}
	}
	if i := s.Pick(keyN(99)); i != -1 {
		t.Errorf("with every backend over its weight: got %d, want -1", i)
	}
	// One connection of backend 1 ends: it is back to its weight (4 of 4
	// plus one allowed) and takes the next.
	p.fakes[1].active.Add(-1)
	if i := s.Pick(keyN(100)); i != 1 {
		t.Errorf("after backend 1 freed one: got %d, want 1", i)
	}
}
