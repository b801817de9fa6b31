package sched

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestLeastConnPicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		algo    string
		weights []int
		active  []int64
		down    []int
		want    int
	}{
		{"lc least active", "lc", []int{1, 1, 1}, []int64{10, 0, 5}, nil, 1},
		{"lc ignores weights", "lc", []int{100, 1, 1}, []int64{10, 2, 5}, nil, 1},
		{"lc skips down", "lc", []int{1, 1, 1}, []int64{10, 0, 5}, []int{1}, 2},
		{"lc skips weight zero", "lc", []int{1, 0, 1}, []int64{10, 0, 5}, nil, 2},
		{"wlc per weight", "wlc", []int{10, 1, 10}, []int64{10, 4, 5}, nil, 2},
		{"wlc heavy takes more", "wlc", []int{1, 4}, []int64{1, 3}, nil, 1},
		{"wlc exact ratio", "wlc", []int{3, 2}, []int64{4, 3}, nil, 0}, // 4/3 < 3/2
		{"wlc huge counts", "wlc", []int{math.MaxInt32, 1}, []int64{math.MaxInt64, 1 << 40}, nil, 0},
		// sed counts the connection being placed: (0+1)/10 < (0+1)/1.
		{"sed prefers heavy when idle", "sed", []int{1, 10}, []int64{0, 0}, nil, 1},
		{"sed weighs the new connection", "sed", []int{10, 1}, []int64{1, 0}, nil, 0},
		// nq sends to the idle backend whatever its weight.
		{"nq prefers idle", "nq", []int{10, 1}, []int64{1, 0}, nil, 1},
		{"nq like sed when none idle", "nq", []int{10, 1}, []int64{2, 1}, nil, 0},
		{"nq skips idle but down", "nq", []int{10, 1}, []int64{1, 0}, []int{1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			p.setActive(tt.active...)
			for _, i := range tt.down {
				p.setUp(i, false)
			}
			s := mustNew(tt.algo, p.backends)
			// Whatever the rotating start, the least loaded wins.
			for i := range len(tt.weights) + 1 {
				if got := s.Pick(keyN(i)); got != tt.want {
					t.Fatalf("pick %d: got %d, want %d", i, got, tt.want)
				}
			}
		})
	}
}

// TestLeastConnSpreadsTies checks that equally loaded backends take turns
// rather than index 0 taking every connection.
func TestLeastConnSpreadsTies(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"lc", "wlc", "sed", "nq"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			c := counts(mustNew(algo, evenPool(4).backends), 4, 400, keyN)
			for i := range 4 {
				if c[i] != 100 {
					t.Errorf("picks of backend %d: got %d, want 100", i, c[i])
				}
			}
		})
	}
}

// TestLeastConnBalancesStream opens and closes connections as a proxy
// would and checks that the weighted algorithms keep each backend's share
// of connections proportional to its weight.
func TestLeastConnBalancesStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		algo    string
		weights []int
	}{
		{"wlc", []int{1, 2, 3}},
		{"wlc", []int{5, 1}},
		{"sed", []int{1, 2, 3}},
		{"nq", []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.algo, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			s := mustNew(tt.algo, p.backends)
			r := rand.New(rand.NewPCG(7, 7))
			var open []int // backend of each open connection
			picks := make([]int, len(tt.weights))
			const concurrent, steps = 120, 60000
			for step := range steps {
				if len(open) == concurrent {
					j := r.IntN(len(open))
					p.fakes[open[j]].active.Add(-1)
					open[j] = open[len(open)-1]
					open = open[:len(open)-1]
				}
				i := s.Pick(keyN(step))
				p.fakes[i].active.Add(1)
				open = append(open, i)
				picks[i]++
			}
			var total float64
			for _, w := range tt.weights {
				total += float64(w)
			}
			for i, w := range tt.weights {
				want := float64(w) / total
				if got := float64(picks[i]) / steps; math.Abs(got-want) > 0.03 {
					t.Errorf("share of backend %d: got %.3f, want %.3f ± 0.03", i, got, want)
				}
				// While full, the open connections are spread by weight too.
				wantActive := float64(concurrent) * want
				if got := float64(p.fakes[i].Active()); math.Abs(got-wantActive) > 3 {
					t.Errorf("active on backend %d: got %.0f, want %.0f ± 3", i, got, wantActive)
				}
			}
		})
	}
}
