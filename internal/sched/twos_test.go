package sched

import (
	"math"
	"testing"
)

func TestTwos(t *testing.T) {
	t.Parallel()
	const n = 100000
	tests := []struct {
		name    string
		weights []int
		active  []int64
		// want is each backend's expected share of the picks.
		want []float64
	}{
		// Idle: the first draw wins ties, so picks follow the weights.
		{"idle follows weights", []int{1, 3}, nil, []float64{0.25, 0.75}},
		// Backend 1 loaded: it wins only when drawn twice (3/4)^2.
		{"loaded heavy backend", []int{1, 3}, []int64{0, 10}, []float64{1 - 0.5625, 0.5625}},
		// Per weight: 10/3 > 1/1, so backend 0 wins any mixed pair.
		{"load per weight", []int{1, 3}, []int64{1, 10}, []float64{1 - 0.5625, 0.5625}},
		{"lighter per weight", []int{1, 3}, []int64{10, 1}, []float64{0.0625, 0.9375}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			p.setActive(tt.active...)
			c := counts(mustNew("twos", p.backends), len(tt.weights), n, keyN)
			for i, w := range tt.want {
				if got := float64(c[i]) / n; math.Abs(got-w) > 0.01 {
					t.Errorf("share of backend %d: got %.4f, want %.4f ± 0.01", i, got, w)
				}
			}
		})
	}
}
