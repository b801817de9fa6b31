package sched

import "sync/atomic"

func init() { register("wrr", newWeightedRoundRobin) }

// weightedRoundRobin gives each usable backend a share of connections
// proportional to its weight, interleaved rather than in bursts: weights
// 5:1:1 give a a b a c a a, not a a a a a b c.
//
// The order is precomputed from the effective weights (zero while a
// backend is unavailable) and walked with one atomic counter, so picks
// never lock and proportions stay exact however many goroutines pick at
// once. A pick that finds the weights changed rebuilds the order (see
// layouts); a mutex around a per-pick smooth-wrr update would also be
// exact, but every connection of the service would queue on it.
type weightedRoundRobin struct {
	backends []Backend
	order    *layouts[[]int32]
	next     atomic.Uint64
}

var _ Scheduler = (*weightedRoundRobin)(nil)

func newWeightedRoundRobin(bs []Backend) Scheduler {
	return &weightedRoundRobin{
		backends: bs,
		order:    newLayouts(bs, effectiveWeight, wrrOrder),
	}
}

func (s *weightedRoundRobin) Pick(Key) int {
	order := s.order.load().v
	if len(order) == 0 {
		return -1
	}
	i := int(order[(s.next.Add(1)-1)%uint64(len(order))])
	if usable(s.backends[i]) {
		return i
	}
	// Only reached on a layout being rebuilt by another pick.
	return firstUsable(s.backends, i+1)
}

// wrrWork bounds the steps of building an order (its length times the
// number of backends), so a rebuild stays within milliseconds.
const wrrWork = 1 << 24

// maxOrder bounds the length of a wrr order.
const maxOrder = 1 << 16

// wrrOrder lays out one cycle of nginx's smooth weighted round-robin: at
// every step each backend earns its weight, the richest is picked and pays
// the total. Over a cycle each backend is picked its weight's times, and at
// every step its count is within one pick of its exact share, so turns
// interleave (5:1:1 gives a a b a c a a).
//
// Weights are divided by their greatest common divisor first, so the order
// is exact whenever the reduced weights sum to at most maxOrder (and the
// order times the backends stays within wrrWork); beyond that they are
// scaled down, and shares are off by under one slot each.
func wrrOrder(weights []int32) []int32 {
	var g, total, n int64
	for _, w := range weights {
		if w > 0 {
			g = gcd(g, int64(w))
			total += int64(w)
			n++
		}
	}
	if total == 0 {
		return nil
	}
	total /= g
	limit := max(n, min(maxOrder, wrrWork/n))
	scaled := make([]int64, len(weights))
	var length int64
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		r := int64(w) / g
		if total > limit {
			r = max(1, r*limit/total)
		}
		scaled[i] = r
		length += r
	}

	cur := make([]int64, len(weights))
	order := make([]int32, length)
	for t := range order {
		best := -1
		for i, w := range scaled {
			if w == 0 {
				continue
			}
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= length
		order[t] = int32(best)
	}
	return order
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
