package sched

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNames(t *testing.T) {
	t.Parallel()
	want := []string{"dh", "fo", "lblc", "lblcr", "lc", "maglev", "mh", "nq", "ovf", "p2c", "random", "rr", "sed", "sh", "twos", "wlc", "wrr"}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() mismatch (-want +got):\n%s", diff)
	}
}

func TestNewUnknown(t *testing.T) {
	t.Parallel()
	s, err := New("fastest", evenPool(2).backends)
	if !errors.Is(err, ErrUnknown) {
		t.Errorf("New(fastest) error: got %v, want %v", err, ErrUnknown)
	}
	if s != nil {
		t.Errorf("New(fastest): got %v, want nil scheduler", s)
	}
}

func TestNoBackend(t *testing.T) {
	t.Parallel()
	down := newPool(1, 2, 3)
	for i := range down.fakes {
		down.setUp(i, false)
	}
	// Available but weightless: Backend implementations should never
	// report this, and schedulers must not trust that they don't.
	weightless := newPool(0, 0, -1)

	tests := []struct {
		name     string
		backends []Backend
	}{
		{"nil", nil},
		{"empty", []Backend{}},
		{"all down", down.backends},
		{"all weight zero", weightless.backends},
	}
	for _, algo := range Names() {
		for _, tt := range tests {
			t.Run(algo+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				s := mustNew(algo, tt.backends)
				for i := range 100 {
					if got := s.Pick(keyN(i)); got != -1 {
						t.Fatalf("Pick(key %d): got %d, want -1", i, got)
					}
				}
			})
		}
	}
}

// TestOnlyUsable checks every scheduler against backends that are down or
// weightless from the start, and against one that goes down mid-stream.
func TestOnlyUsable(t *testing.T) {
	t.Parallel()
	for _, algo := range Names() {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := newPool(1, 1, 0, 2, 1)
			p.setUp(1, false)
			s := mustNew(algo, p.backends)
			unusable := map[int]bool{1: true, 2: true}
			check := func(from, to int) {
				t.Helper()
				picked := map[int]bool{}
				for i := from; i < to; i++ {
					got := s.Pick(keyN(i))
					if got < 0 || got >= len(p.backends) || unusable[got] {
						t.Fatalf("Pick(key %d): got %d, want one of the usable backends (not %v)", i, got, unusable)
					}
					picked[got] = true
				}
				// Nothing is loaded, so every algorithm should spread
				// 2000 distinct keys over all usable backends, except
				// sed, which rightly sends all to the heaviest idle one,
				// and fo and ovf, which send all to the heaviest one
				// (nothing here ends a connection to make ovf overflow).
				if algo == "sed" || algo == "fo" || algo == "ovf" {
					return
				}
				for i := range p.backends {
					if !unusable[i] && !picked[i] {
						t.Errorf("keys %d-%d: backend %d never picked, want every usable backend picked", from, to, i)
					}
				}
			}
			check(0, 2000)
			p.setUp(3, false)
			unusable[3] = true
			check(2000, 4000)
			p.setWeight(0, 0)
			unusable[0] = true
			check(4000, 6000)
		})
	}
}

// TestConcurrentPick runs picks from eight goroutines while another flips
// weights and availability; -race does most of the checking.
func TestConcurrentPick(t *testing.T) {
	t.Parallel()
	for _, algo := range Names() {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := evenPool(10)
			s := mustNew(algo, p.backends)
			var stop atomic.Bool
			flipped := make(chan struct{})
			go func() {
				defer close(flipped)
				r := rand.New(rand.NewPCG(1, 2))
				for !stop.Load() {
					i := r.IntN(len(p.fakes))
					switch r.IntN(3) {
					case 0:
						p.setUp(i, !p.fakes[i].up.Load())
					case 1:
						p.setWeight(i, r.IntN(5))
					default:
						p.fakes[i].active.Store(int64(r.IntN(20)))
					}
				}
			}()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 3000 {
						k := keyN(g*3000 + i)
						if i%2 == 0 {
							k.Rand = 0
						}
						got := s.Pick(k)
						if got < -1 || got >= len(p.backends) {
							t.Errorf("Pick: got %d, want an index in [-1, %d)", got, len(p.backends))
							return
						}
						if got >= 0 {
							p.fakes[got].active.Add(1)
							p.fakes[got].active.Add(-1)
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			<-flipped

			// Once the flipping stops, picks see a settled pool again
			// (idle: ovf rightly refuses when every backend is over its
			// weight).
			for i := range p.fakes {
				p.setUp(i, true)
				p.setWeight(i, 1)
				p.fakes[i].active.Store(0)
			}
			p.setUp(4, false)
			for i := range 200 {
				if got := s.Pick(keyN(i)); got < 0 || got == 4 {
					t.Fatalf("Pick after settling: got %d, want a backend other than 4", got)
				}
			}
		})
	}
}

// TestPickDoesNotAllocate holds for the steady state; building a new
// layout after a weight change may allocate.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, algo := range Names() {
		t.Run(algo, func(t *testing.T) {
			p := benchPool()
			s := mustNew(algo, p.backends)
			keys := make([]Key, 64)
			for i := range keys {
				keys[i] = keyN(i)
				if i%2 == 0 {
					keys[i].Rand = 0
				}
			}
			for _, k := range keys {
				s.Pick(k)
			}
			i := 0
			got := testing.AllocsPerRun(1000, func() {
				s.Pick(keys[i%len(keys)])
				i++
			})
			if got != 0 {
				t.Errorf("allocs per Pick: got %v, want 0", got)
			}
		})
	}
}

// TestFlappingDoesNotAllocate checks that a backend flapping between two
// states reuses the layouts built for them.
func TestFlappingDoesNotAllocate(t *testing.T) {
	for _, algo := range Names() {
		t.Run(algo, func(t *testing.T) {
			p := benchPool()
			s := mustNew(algo, p.backends)
			flap := func(i int) {
				p.setUp(3, i%2 == 0)
				s.Pick(keyN(i % 64))
			}
			for i := range 128 {
				flap(i)
			}
			i := 0
			got := testing.AllocsPerRun(1000, func() {
				flap(i)
				i++
			})
			if got != 0 {
				t.Errorf("allocs per Pick while flapping: got %v, want 0", got)
			}
		})
	}
}

// benchPool is ten backends with mixed weights and loads.
func benchPool() pool {
	p := newPool(1, 2, 3, 1, 2, 3, 1, 2, 3, 4)
	p.setActive(3, 1, 4, 1, 5, 9, 2, 6, 5, 3)
	return p
}

func BenchmarkPick(b *testing.B) {
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = keyN(i)
		keys[i].Rand = 0 // p2c and random draw their own, as in production
	}
	for _, algo := range Names() {
		b.Run(algo, func(b *testing.B) {
			s := mustNew(algo, benchPool().backends)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s.Pick(keys[i%len(keys)])
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = keyN(i)
		keys[i].Rand = 0
	}
	for _, algo := range Names() {
		b.Run(algo, func(b *testing.B) {
			s := mustNew(algo, benchPool().backends)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					s.Pick(keys[i%len(keys)])
				}
			})
		})
	}
}
