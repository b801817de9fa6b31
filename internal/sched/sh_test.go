package sched

import (
	"math"
	"testing"
)

// hashKey returns a key of which only the field algo hashes varies.
func hashKey(algo string) func(int) Key {
	return func(n int) Key {
		h := Mix(uint64(n) + 1)
		if algo == "dh" {
			return Key{Source: 42, Dest: h, Rand: 42}
		}
		return Key{Source: h, Dest: 42, Rand: 42}
	}
}

func TestHashingSticks(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"sh", "dh", "maglev", "mh"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := benchPool()
			a, b := mustNew(algo, p.backends), mustNew(algo, p.backends)
			key := hashKey(algo)
			if algo == "maglev" || algo == "mh" {
				key = hashKey("sh")
			}
			for i := range 1000 {
				k := key(i)
				first := a.Pick(k)
				for range 3 {
					if got := a.Pick(k); got != first {
						t.Fatalf("key %d picked again: got %d, want %d", i, got, first)
					}
				}
				// The mapping depends on nothing but the backends.
				if got := b.Pick(k); got != first {
					t.Fatalf("key %d on a second scheduler: got %d, want %d", i, got, first)
				}
				// Fields the algorithm does not hash do not matter.
				other := k
				other.Rand++
				if algo == "dh" {
					other.Source = Mix(other.Source)
				} else {
					other.Dest = Mix(other.Dest)
				}
				if got := a.Pick(other); got != first {
					t.Fatalf("key %d with other fields changed: got %d, want %d", i, got, first)
				}
			}
		})
	}
}

func TestHashSlotsShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
	}{
		{"even", []int{1, 1, 1, 1, 1}},
		{"weighted", []int{1, 2, 3, 4}},
		{"weight zero", []int{2, 0, 2}},
	}
	for _, algo := range []string{"sh", "dh"} {
		for _, tt := range tests {
			t.Run(algo+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				const n = 100000
				c := counts(mustNew(algo, newPool(tt.weights...).backends), len(tt.weights), n, hashKey(algo))
				var total float64
				for _, w := range tt.weights {
					total += float64(w)
				}
				for i, w := range tt.weights {
					want := float64(w) / total
					if got := float64(c[i]) / n; math.Abs(got-want) > 0.01 {
						t.Errorf("share of backend %d: got %.4f, want %.4f ± 0.01", i, got, want)
					}
				}
			})
		}
	}
}

// TestHashSlotsFallback takes a backend down: its keys move to the others,
// spread and stable, while every other key stays where it was, and all
// come back when it returns.
func TestHashSlotsFallback(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"sh", "dh"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			p := evenPool(5)
			s := mustNew(algo, p.backends)
			key := hashKey(algo)
			const n = 20000
			before := make([]int, n)
			for i := range n {
				before[i] = s.Pick(key(i))
			}

			p.setUp(2, false)
			moved := make([]int, 5)
			for i := range n {
				got := s.Pick(key(i))
				switch {
				case got == 2 || got < 0:
					t.Fatalf("key %d with backend 2 down: got %d, want another backend", i, got)
				case before[i] != 2 && got != before[i]:
					t.Fatalf("key %d of backend %d: got %d, want it to stay", i, before[i], got)
				case before[i] == 2:
					moved[got]++
					if again := s.Pick(key(i)); again != got {
						t.Fatalf("key %d picked again: got %d, want %d", i, again, got)
					}
				}
			}
			// About n/5 keys move, a quarter of them to each survivor.
			for i, m := range moved {
				if i != 2 && (m < n/20*8/10 || m > n/20*12/10) {
					t.Errorf("keys moved to backend %d: got %d, want %d ± 20%%", i, m, n/20)
				}
			}

			p.setUp(2, true)
			for i := range n {
				if got := s.Pick(key(i)); got != before[i] {
					t.Fatalf("key %d after backend 2 returned: got %d, want %d", i, got, before[i])
				}
			}
		})
	}
}
