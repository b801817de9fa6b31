package sched

func init() {
	register("maglev", func(bs []Backend) Scheduler { return newMaglevOn(bs, effectiveWeight) })
}

// MaglevSize is the lookup table size: prime, as Maglev requires, and
// large enough that ten backends' shares differ by well under 1%.
const MaglevSize = 65537

// maglev is Google's Maglev consistent hashing (Eisenbud et al., NSDI
// 2016) over Key.Source. Each backend fills table entries in the order of
// its own permutation of the table, taking turns with the others in
// proportion to its weight; a key is served by the backend in the entry
// its hash selects. When a backend leaves, the entries it held are
// refilled by the others and few entries change hands between survivors,
// so few connections move.
//
// maglev builds the table from the effective weights, so a backend that
// goes down or fills up is left out exactly as if it had been removed, and
// taken back when it returns; flapping between recent states reuses the
// tables already built (see layouts). mh builds it from the configured
// weights instead (see mh.go).
type maglev struct {
	backends []Backend
	// offset and skip define backend i's permutation: entry j of it is
	// (offset[i] + j*skip[i]) mod MaglevSize.
	offset, skip []uint64
	table        *layouts[[]int32]
}

var _ Scheduler = (*maglev)(nil)

// newMaglevOn returns a maglev whose table follows weigh.
func newMaglevOn(bs []Backend, weigh func(Backend) int32) *maglev {
	m := &maglev{
		backends: bs,
		offset:   make([]uint64, len(bs)),
		skip:     make([]uint64, len(bs)),
	}
	for i, b := range bs {
		// A name keeps a backend's permutation across reloads that
		// reorder the backends; without one, its position has to do.
		id := Mix(uint64(i) + 1)
		if n, ok := b.(Named); ok {
			id = HashString(n.Name())
		}
		m.offset[i], m.skip[i] = maglevPermutation(id)
	}
	m.table = newLayouts(bs, weigh, m.build)
	return m
}

// maglevPermutation returns the start and the stride of the permutation
// of the table that a backend with identity id fills entries in.
func maglevPermutation(id uint64) (offset, skip uint64) {
	return id % MaglevSize, Mix(id^golden)%(MaglevSize-1) + 1
}

// MaglevTable builds the table that maglev (and mh) builds for backends
// with these names and weights, in this order: entry i of the result is
// the index of the backend that keys hashing to i go to, or -1 when every
// weight is 0 (then the result is all -1). The names must be what the
// backends' Name methods return (balancer.Backend: its address) for the
// table to be the scheduler's; the result depends only on the arguments,
// so every node building it from the same config and health gets the
// same table. A kernel data plane uses it to fill its own rings.
func MaglevTable(names []string, weights []int32) []int32 {
	m := &maglev{offset: make([]uint64, len(names)), skip: make([]uint64, len(names))}
	for i, n := range names {
		m.offset[i], m.skip[i] = maglevPermutation(HashString(n))
	}
	ws := make([]int32, len(weights))
	for i, w := range weights {
		ws[i] = max(w, 0)
	}
	if t := m.build(ws); t != nil {
		return t
	}
	t := make([]int32, MaglevSize)
	for i := range t {
		t[i] = -1
	}
	return t
}

func (m *maglev) Pick(k Key) int {
	t := m.table.load().v
	if len(t) == 0 {
		return -1
	}
	x := Mix(k.Source)
	i := int(t[x%MaglevSize])
	if usable(m.backends[i]) {
		return i
	}
	// maglev: only on a table being rebuilt by another pick. mh: the
	// entry's backend is down or full; rehash, deterministically, so its
	// clients spread over the others and every other client stays put.
	for p := uint64(1); p < hashProbes; p++ {
		if j := int(t[Mix(x+p*golden)%MaglevSize]); usable(m.backends[j]) {
			return j
		}
	}
	return firstUsable(m.backends, i+1)
}

// build fills the table. In every round each backend earns its weight in
// credit and places one entry per maxWeight of credit, so the heaviest
// backends place one entry a round and the others proportionally fewer.
func (m *maglev) build(weights []int32) []int32 {
	var maxWeight int64
	for _, w := range weights {
		maxWeight = max(maxWeight, int64(w))
	}
	if maxWeight == 0 {
		return nil
	}
	table := make([]int32, MaglevSize)
	for i := range table {
		table[i] = -1
	}
	next := make([]uint64, len(weights)) // next candidate entry per backend
	copy(next, m.offset)
	credit := make([]int64, len(weights))
	for filled := 0; ; {
		for i, w := range weights {
			if w <= 0 {
				continue
			}
			credit[i] += int64(w)
			if credit[i] < maxWeight {
				continue
			}
			credit[i] -= maxWeight
			c := next[i]
			for table[c] >= 0 {
				if c += m.skip[i]; c >= MaglevSize {
					c -= MaglevSize
				}
			}
			table[c] = int32(i)
			if c += m.skip[i]; c >= MaglevSize {
				c -= MaglevSize
			}
			next[i] = c
			if filled++; filled == MaglevSize {
				return table
			}
		}
	}
}
