package replay

import "testing"

func TestWindow(t *testing.T) {
	t.Parallel()
	var w Window
	steps := []struct {
		seq  uint64
		want bool
	}{
		{100, true}, {100, false}, {99, true}, {99, false}, {101, true}, {37, false} /* below window */, {150, true},
		{120, true}, {120, false}, {87, true} /* 150-63 */, {86, false}, {300, true}, {150, false}, {299, true},
		{0, false},
	}
	for i, s := range steps {
		if got := w.Accept(s.seq); got != s.want {
			t.Errorf("step %d: Accept(%d) = %v, want %v", i, s.seq, got, s.want)
		}
	}
	var z Window
	if !z.Accept(0) || z.Accept(0) {
		t.Error("zero window: 0 not accepted once")
	}
}
