package sched

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

const dest = 0xd1 // Key.Dest used throughout

func destKey(d uint64) Key { return Key{Source: 1, Dest: d, Rand: 1} }

func TestLBLCSticks(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"lblc", "lblcr"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := newPool(4, 4, 4)
			s := mustNew(algo, p.backends)
			first := s.Pick(destKey(dest))
			// Up to its weight, the server keeps taking the destination's
			// connections though the others are idle.
			for i := range 4 {
				if got := s.Pick(destKey(dest)); got != first {
					t.Fatalf("pick %d with %d active: got %d, want %d", i, p.fakes[first].Active(), got, first)
				}
				p.fakes[first].active.Add(1)
			}
			// Other destinations are spread by wlc, not sent to first.
			if got := s.Pick(destKey(dest + 1)); got == first {
				t.Errorf("another destination: got %d, want a less loaded server", got)
			}
		})
	}
}

func TestLBLCMoves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(p pool, first int)
		moves  bool
	}{
		{"overloaded", func(p pool, first int) { p.fakes[first].active.Store(5) }, true},
		// Over its weight, but nobody else is below half load: IPVS
		// keeps the destination where it is.
		{"all busy", func(p pool, first int) {
			p.setActive(5, 5, 5)
			p.fakes[first].active.Store(6)
		}, false},
		{"down", func(p pool, first int) { p.setUp(first, false) }, true},
		{"weight zero", func(p pool, first int) { p.setWeight(first, 0) }, true},
	}
	for _, algo := range []string{"lblc", "lblcr"} {
		for _, tt := range tests {
			t.Run(algo+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				p := newPool(4, 4, 4)
				s := mustNew(algo, p.backends)
				first := s.Pick(destKey(dest))
				tt.change(p, first)
				got := s.Pick(destKey(dest))
				if moved := got != first; moved != tt.moves {
					t.Fatalf("after the change: got %d (first %d), want moved=%v", got, first, tt.moves)
				}
				if got < 0 || !usable(p.backends[got]) {
					t.Fatalf("after the change: got %d, want a usable backend", got)
				}
				// Wherever it went, it stays there.
				if again := s.Pick(destKey(dest)); again != got {
					t.Errorf("picked again: got %d, want %d", again, got)
				}
			})
		}
	}
}

func TestLBLCExpiry(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"lblc", "lblcr"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newPool(2, 2, 2)
				s := mustNew(algo, p.backends)
				first := s.Pick(destKey(dest))
				// Loaded up to its weight: not overloaded, but no longer
				// what wlc would choose.
				p.fakes[first].active.Store(2)

				for range 3 {
					time.Sleep(localityTTL - time.Second)
					if got := s.Pick(destKey(dest)); got != first {
						t.Fatalf("within %v of the last use: got %d, want %d", localityTTL, got, first)
					}
				}
				time.Sleep(localityTTL)
				if got := s.Pick(destKey(dest)); got == first {
					t.Errorf("after %v unused: got %d, want the entry forgotten and a less loaded server", localityTTL, got)
				}
			})
		})
	}
}

func TestLocalityTableBounded(t *testing.T) {
	t.Parallel()
	p := evenPool(3)
	s := mustNew("lblc", p.backends).(*lblc)
	for d := range 100000 {
		s.Pick(destKey(uint64(d)))
	}
	used := 0
	for i := range s.table.shards {
		for _, e := range s.table.shards[i].slots {
			if e.used {
				used++
			}
		}
	}
	if limit := localityShards * localitySets * localityWays; used > limit {
		t.Errorf("entries: got %d, want at most %d", used, limit)
	}
	// The most recent destinations are still there.
	now := s.table.now()
	for d := 100000 - 100; d < 100000; d++ {
		sh, set := s.table.locate(uint64(d))
		if sh.find(set, uint64(d), now) == nil {
			t.Errorf("destination %d, among the last used: got no entry, want one", d)
		}
	}
}

// members lists the server set of d in s.
func members(s *lblcr, d uint64) []int {
	sh, set := s.table.locate(d)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.find(set, d, s.table.now())
	if e == nil {
		return nil
	}
	var m []int
	for i := range s.backends {
		if e.v.members[i/64]&(1<<(i%64)) != 0 {
			m = append(m, i)
		}
	}
	return m
}

func TestLBLCRReplicates(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newPool(2, 2, 2, 2)
		s := mustNew("lblcr", p.backends).(*lblcr)
		a := s.Pick(destKey(dest))
		if got := members(s, dest); !slices.Equal(got, []int{a}) {
			t.Fatalf("set after the first pick: got %v, want [%d]", got, a)
		}

		// a overloaded: a second server joins the set.
		p.fakes[a].active.Store(3)
		b := s.Pick(destKey(dest))
		if b == a {
			t.Fatalf("with %d overloaded: got %d, want another server", a, b)
		}
		want := []int{a, b}
		slices.Sort(want)
		if got := members(s, dest); !slices.Equal(got, want) {
			t.Fatalf("set after overload: got %v, want %v", got, want)
		}

		// The least loaded member takes the connections; the set does not
		// grow while it can.
		p.fakes[b].active.Store(1)
		for range 3 {
			if got := s.Pick(destKey(dest)); got != b {
				t.Fatalf("with members %v: got %d, want the least loaded member %d", want, got, b)
			}
		}
		p.fakes[a].active.Store(0)
		if got := s.Pick(destKey(dest)); got != a {
			t.Fatalf("after %d drained: got %d, want it back", a, got)
		}
		if got := members(s, dest); !slices.Equal(got, want) {
			t.Fatalf("set: got %v, want %v", got, want)
		}

		// Unchanged for replicaTTL while in use: the busiest member goes.
		p.fakes[a].active.Store(2)
		p.fakes[b].active.Store(1)
		for range 7 {
			time.Sleep(time.Minute)
			s.Pick(destKey(dest))
		}
		if got := members(s, dest); !slices.Equal(got, []int{b}) {
			t.Fatalf("set after %v unchanged: got %v, want [%d]", replicaTTL, got, b)
		}
		// The remaining member keeps the destination.
		time.Sleep(replicaTTL - time.Second)
		if got := s.Pick(destKey(dest)); got != b {
			t.Errorf("after shrinking: got %d, want %d", got, b)
		}
	})
}
