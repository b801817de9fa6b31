package sched

import (
	"math"
	"testing"
)

func TestRandomShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		down    []int
		keys    func(int) Key
		want    []float64
	}{
		{"own random", []int{1, 3}, nil, func(int) Key { return Key{} }, []float64{0.25, 0.75}},
		{"key random", []int{1, 3}, nil, keyN, []float64{0.25, 0.75}},
		{"even", []int{2, 2, 2, 2}, nil, keyN, []float64{0.25, 0.25, 0.25, 0.25}},
		{"down and weightless", []int{1, 4, 0, 3}, []int{1}, keyN, []float64{0.25, 0, 0, 0.75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			for _, i := range tt.down {
				p.setUp(i, false)
			}
			const n = 100000
			c := counts(mustNew("random", p.backends), len(tt.weights), n, tt.keys)
			for i, want := range tt.want {
				if got := float64(c[i]) / n; math.Abs(got-want) > 0.01 {
					t.Errorf("share of backend %d: got %.4f, want %.4f ± 0.01", i, got, want)
				}
			}
		})
	}
}

func TestRandomDeterministicWithKey(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"random", "p2c"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := benchPool()
			a, b := mustNew(algo, p.backends), mustNew(algo, p.backends)
			for i := range 1000 {
				if x, y := a.Pick(keyN(i)), b.Pick(keyN(i)); x != y {
					t.Fatalf("key %d: got %d and %d from two schedulers, want the same pick", i, x, y)
				}
			}
		})
	}
}

func TestP2C(t *testing.T) {
	t.Parallel()
	t.Run("never the busiest", func(t *testing.T) {
		t.Parallel()
		// Of two distinct choices, the one with the most load never wins.
		p := newPool(1, 1, 1, 1)
		p.setActive(1, 2, 3, 9)
		c := counts(mustNew("p2c", p.backends), 4, 20000, keyN)
		if c[3] != 0 {
			t.Errorf("picks of the busiest backend: got %d, want 0", c[3])
		}
		// The idlest wins every pair it is drawn into: half of all pairs.
		if got := float64(c[0]) / 20000; math.Abs(got-0.5) > 0.02 {
			t.Errorf("share of the idlest backend: got %.3f, want 0.500 ± 0.02", got)
		}
	})
	t.Run("weights", func(t *testing.T) {
		t.Parallel()
		// 4 connections on weight 4 is lighter than 2 on weight 1.
		p := newPool(4, 1)
		p.setActive(4, 2)
		s := mustNew("p2c", p.backends)
		for i := range 100 {
			if got := s.Pick(keyN(i)); got != 0 {
				t.Fatalf("pick %d: got %d, want 0", i, got)
			}
		}
	})
	t.Run("mostly down", func(t *testing.T) {
		t.Parallel()
		p := evenPool(20)
		for i := range 18 {
			p.setUp(i, false)
		}
		p.setActive(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1)
		s := mustNew("p2c", p.backends)
		for i := range 1000 {
			if got := s.Pick(keyN(i)); got != 19 {
				t.Fatalf("pick %d: got %d, want 19", i, got)
			}
		}
	})
	t.Run("balances stream", func(t *testing.T) {
		t.Parallel()
		p := newPool(1, 1, 1, 1, 1)
		s := mustNew("p2c", p.backends)
		for i := range 5000 {
			p.fakes[s.Pick(keyN(i))].active.Add(1)
		}
		for i, f := range p.fakes {
			if got := f.Active(); got < 990 || got > 1010 {
				t.Errorf("active on backend %d: got %d, want 1000 ± 10", i, got)
			}
		}
	})
}
