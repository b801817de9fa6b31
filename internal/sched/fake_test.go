package sched

import (
	"fmt"
	"sync/atomic"
)

// fake is a Backend whose state tests set directly. Unlike the real
// backend its Available ignores the weight, so tests catch a scheduler
// that trusts Available alone with a zero weight.
type fake struct {
	up     atomic.Bool
	weight atomic.Int64
	active atomic.Int64
}

var _ Backend = (*fake)(nil)

func (f *fake) Available() bool { return f.up.Load() }
func (f *fake) Weight() int     { return int(f.weight.Load()) }
func (f *fake) Active() int64   { return f.active.Load() }

// pool is a set of fakes and the []Backend view schedulers are built on.
type pool struct {
	fakes    []*fake
	backends []Backend
}

// newPool returns up backends with the given weights.
func newPool(weights ...int) pool {
	p := pool{fakes: make([]*fake, len(weights)), backends: make([]Backend, len(weights))}
	for i, w := range weights {
		f := &fake{}
		f.up.Store(true)
		f.weight.Store(int64(w))
		p.fakes[i], p.backends[i] = f, f
	}
	return p
}

// evenPool returns n up backends of weight 1.
func evenPool(n int) pool {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	return newPool(w...)
}

func (p pool) setActive(active ...int64) {
	for i, a := range active {
		p.fakes[i].active.Store(a)
	}
}

func (p pool) setUp(i int, up bool) { p.fakes[i].up.Store(up) }

func (p pool) setWeight(i, w int) { p.fakes[i].weight.Store(int64(w)) }

// named wraps a fake with a stable name.
type named struct {
	*fake
	name string
}

func (n named) Name() string { return n.name }

// keyN is the n-th of a stream of distinct, well-spread keys.
func keyN(n int) Key {
	h := Mix(uint64(n) + 1)
	return Key{Source: h, Dest: Mix(h), Rand: Mix(h ^ golden)}
}

func mustNew(name string, bs []Backend) Scheduler {
	s, err := New(name, bs)
	if err != nil {
		panic(fmt.Sprintf("New(%q): %v", name, err))
	}
	return s
}

// counts picks n keys and counts the picks per backend; index len(counts)
// holds -1 results.
func counts(s Scheduler, nBackends, n int, key func(int) Key) []int {
	c := make([]int, nBackends+1)
	for i := range n {
		j := s.Pick(key(i))
		if j < 0 {
			j = nBackends
		}
		c[j]++
	}
	return c
}
