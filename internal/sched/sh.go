package sched

func init() {
	register("sh", func(bs []Backend) Scheduler {
		return newHashSlots(bs, func(k Key) uint64 { return k.Source })
	})
}

// hashSlots maps a hash onto backends as IPVS sh and dh do: a backend of
// weight w owns w slots, and a key lands in the slot its hash selects, so
// the same client (sh) or destination (dh) reaches the same backend while
// the weights stay put.
//
// Slots follow the configured weights, not availability: when a backend
// goes down only its own keys move, and they come back when it returns.
// A key whose backend is unusable is rehashed, deterministically, until it
// lands on a usable one, like IPVS sh with its fallback flag; rehashing
// rather than stepping to the next slot spreads the stranded keys over all
// remaining backends instead of piling them onto one neighbour. A weight
// change moves keys across all backends, as it does in IPVS; maglev is the
// scheduler for consistent hashing.
type hashSlots struct {
	backends []Backend
	key      func(Key) uint64
	// cumulative weights: backend i owns slots [cum[i-1], cum[i]).
	cum *layouts[[]uint64]
}

var _ Scheduler = (*hashSlots)(nil)

func newHashSlots(bs []Backend, key func(Key) uint64) *hashSlots {
	return &hashSlots{
		backends: bs,
		key:      key,
		cum:      newLayouts(bs, configuredWeight, cumulative),
	}
}

// hashProbes bounds the rehashes before falling back to a scan. With half
// of the weight down, a key still needs the scan only once in 2^16.
const hashProbes = 16

func (s *hashSlots) Pick(k Key) int {
	cum := s.cum.load().v
	if len(cum) == 0 || cum[len(cum)-1] == 0 {
		return -1
	}
	total := cum[len(cum)-1]
	x := s.key(k)
	first := -1
	for p := range uint64(hashProbes) {
		i := owner(cum, below(Mix(x+p*golden), total))
		if usable(s.backends[i]) {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return firstUsable(s.backends, first+1)
}

// owner returns the backend owning slot: the first i with slot < cum[i].
func owner(cum []uint64, slot uint64) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if slot < cum[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func cumulative(weights []int32) []uint64 {
	cum := make([]uint64, len(weights))
	var sum uint64
	for i, w := range weights {
		sum += uint64(w)
		cum[i] = sum
	}
	return cum
}
