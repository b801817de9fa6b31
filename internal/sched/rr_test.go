package sched

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		down    []int
		want    []int // picks out of 9000, per backend
	}{
		{"even", []int{1, 1, 1}, nil, []int{3000, 3000, 3000}},
		{"ignores weights", []int{1, 5, 9}, nil, []int{3000, 3000, 3000}},
		// Turns skip the down backend instead of handing its turn to the
		// next one, so the others still share evenly.
		{"skips down", []int{1, 1, 1, 1}, []int{1}, []int{3000, 0, 3000, 3000}},
		{"skips weight zero", []int{1, 0, 1}, nil, []int{4500, 0, 4500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPool(tt.weights...)
			for _, i := range tt.down {
				p.setUp(i, false)
			}
			got := counts(mustNew("rr", p.backends), len(tt.weights), 9000, keyN)
			if diff := cmp.Diff(append(tt.want, 0), got); diff != "" {
				t.Errorf("picks per backend (last: none) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundRobinOrder(t *testing.T) {
	t.Parallel()
	s := mustNew("rr", evenPool(3).backends)
	var got []int
	for range 7 {
		got = append(got, s.Pick(Key{}))
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; !cmp.Equal(got, want) {
		t.Errorf("picks: got %v, want %v", got, want)
	}
}
