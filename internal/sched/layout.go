package sched

import (
	"slices"
	"sync"
	"sync/atomic"
)

// A layout is a structure precomputed from the backends' weights at one
// moment: a wrr schedule, the weight slots of sh and dh, a maglev table.
type layout[T any] struct {
	// weights holds, per backend, what weigh returned when v was built.
	weights []int32
	v       T
}

// keptLayouts is how many recent layouts a scheduler keeps. A backend that
// flaps between up and down, or between full and not, alternates between
// two weight vectors; keeping a few turns each flap into a pointer swap
// instead of a rebuild.
const keptLayouts = 4

// layouts keeps the layout matching the backends' current weights.
//
// Weights and availability change behind the scheduler's back (health
// checks, admin actions, slow start), and Backend offers no notification,
// so each pick compares the live weights with those the current layout was
// built from: one atomic load and an O(n) scan, no lock. The pick that
// first sees a difference rebuilds and publishes the result; picks that
// arrive meanwhile keep using the previous layout rather than wait, so
// callers must check that what a layout leads them to is still usable.
type layouts[T any] struct {
	backends []Backend
	weigh    func(Backend) int32
	build    func(weights []int32) T
	cur      atomic.Pointer[layout[T]]

	mu      sync.Mutex   // held by the one goroutine rebuilding
	recent  []*layout[T] // most recently published first; guarded by mu
	scratch []int32      // guarded by mu
}

// newLayouts builds the first layout at once so that cur is never nil.
func newLayouts[T any](bs []Backend, weigh func(Backend) int32, build func([]int32) T) *layouts[T] {
	c := &layouts[T]{
		backends: bs,
		weigh:    weigh,
		build:    build,
		scratch:  make([]int32, len(bs)),
	}
	c.mu.Lock()
	c.refresh()
	c.mu.Unlock()
	return c
}

// load returns the layout for the current weights, or the previous one if
// another goroutine is building the new one right now.
func (c *layouts[T]) load() *layout[T] {
	l := c.cur.Load()
	if c.current(l) || !c.mu.TryLock() {
		return l
	}
	defer c.mu.Unlock()
	return c.refresh()
}

func (c *layouts[T]) current(l *layout[T]) bool {
	for i, b := range c.backends {
		if c.weigh(b) != l.weights[i] {
			return false
		}
	}
	return true
}

// refresh publishes the layout for the weights as they are now, reusing a
// recent one when the weights went back to an earlier state. c.mu must be
// held.
func (c *layouts[T]) refresh() *layout[T] {
	for i, b := range c.backends {
		c.scratch[i] = c.weigh(b)
	}
	for k, l := range c.recent {
		if slices.Equal(l.weights, c.scratch) {
			copy(c.recent[1:k+1], c.recent[:k])
			c.recent[0] = l
			c.cur.Store(l)
			return l
		}
	}
	l := &layout[T]{weights: slices.Clone(c.scratch), v: c.build(c.scratch)}
	if len(c.recent) < keptLayouts {
		c.recent = append(c.recent, nil)
	}
	copy(c.recent[1:], c.recent[:len(c.recent)-1])
	c.recent[0] = l
	c.cur.Store(l)
	return l
}

// effectiveWeight is the weight a backend can take new connections at now:
// zero while it is unavailable.
func effectiveWeight(b Backend) int32 {
	if !b.Available() {
		return 0
	}
	return clampWeight(b.Weight())
}

// configuredWeight ignores availability, for layouts that must not move
// keys off healthy backends when another one goes down (sh, dh).
func configuredWeight(b Backend) int32 {
	return clampWeight(b.Weight())
}
