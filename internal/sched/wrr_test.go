package sched

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWeightedRoundRobinShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		down    []int
		want    []float64
	}{
		{"1:3", []int{1, 3}, nil, []float64{0.25, 0.75}},
		{"5:1:1", []int{5, 1, 1}, nil, []float64{5.0 / 7, 1.0 / 7, 1.0 / 7}},
		{"common divisor", []int{100, 200, 300}, nil, []float64{1.0 / 6, 2.0 / 6, 3.0 / 6}},
		{"down backend", []int{1, 5, 2}, []int{1}, []float64{1.0 / 3, 0, 2.0 / 3}},
		{"weight zero", []int{1, 0, 3}, nil, []float64{0.25, 0, 0.75}},
		{"coprime", []int{7, 11, 13}, nil, []float64{7.0 / 31, 11.0 / 31, 13.0 / 31}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			for _, i := range tt.down {
				p.setUp(i, false)
			}
			const n = 10000
			c := counts(mustNew("wrr", p.backends), len(tt.weights), n, keyN)
			for i, want := range tt.want {
				if got := float64(c[i]) / n; math.Abs(got-want) > 0.01 {
					t.Errorf("share of backend %d: got %.4f, want %.4f ± 0.01", i, got, want)
				}
			}
		})
	}
}

// TestWeightedRoundRobinInterleaves checks the order is smooth: heavy
// backends do not get all their turns in one burst.
func TestWeightedRoundRobinInterleaves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		first   []int
	}{
		{"1:3", []int{1, 3}, []int{1, 0, 1, 1}},
		{"5:1:1", []int{5, 1, 1}, []int{0, 0, 1, 0, 2, 0, 0}},
		{"2:1", []int{2, 1}, []int{0, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew("wrr", newPool(tt.weights...).backends)
			var got []int
			for range len(tt.first) {
				got = append(got, s.Pick(Key{}))
			}
			if !cmp.Equal(got, tt.first) {
				t.Errorf("first picks: got %v, want %v", got, tt.first)
			}
		})
	}
}

// TestWeightedRoundRobinFollowsWeights changes weights between picks, as
// slow start does.
func TestWeightedRoundRobinFollowsWeights(t *testing.T) {
	t.Parallel()
	p := newPool(1, 1)
	s := mustNew("wrr", p.backends)
	const n = 8000
	check := func(want0 float64) {
		t.Helper()
		c := counts(s, 2, n, keyN)
		if got := float64(c[0]) / n; math.Abs(got-want0) > 0.01 {
			t.Errorf("share of backend 0: got %.4f, want %.4f ± 0.01", got, want0)
		}
	}
	check(0.5)
	p.setWeight(0, 3)
	check(0.75)
	p.setWeight(1, 5)
	check(3.0 / 8)
	p.setUp(1, false)
	check(1)
	p.setUp(1, true)
	check(3.0 / 8)
}

func TestWRROrderBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int32
	}{
		{"coprime large", []int32{65521, 65519, 3}},
		{"max weights", []int32{math.MaxInt32, 1, math.MaxInt32 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			order := wrrOrder(tt.weights)
			if len(order) > maxOrder+len(tt.weights) {
				t.Fatalf("order length: got %d, want at most %d", len(order), maxOrder+len(tt.weights))
			}
			c := make([]int, len(tt.weights))
			for _, i := range order {
				c[i]++
			}
			var total float64
			for _, w := range tt.weights {
				total += float64(w)
			}
			for i, w := range tt.weights {
				want := float64(w) / total
				if got := float64(c[i]) / float64(len(order)); math.Abs(got-want) > 0.001 {
					t.Errorf("share of backend %d: got %.5f, want %.5f ± 0.001", i, got, want)
				}
				if c[i] == 0 {
					t.Errorf("backend %d: got no turns, want at least one", i)
				}
			}
		})
	}
}
