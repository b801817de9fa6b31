package sched

import (
	"sync"
	"time"
)

// The locality table of lblc and lblcr remembers which server(s) each
// destination went to. Its bounds follow IPVS: an entry unused for six
// minutes is dropped (IPVS's ENTRY_TIMEOUT), and the table holds at most
// 16384 entries (IPVS's max_size for its default 1024 buckets).
const (
	localityTTL    = 6 * time.Minute
	localityShards = 64
	localitySets   = 32 // per shard
	localityWays   = 8  // entries per set
)

// localityTable is a fixed-size set-associative cache keyed by destination
// hash. A full set evicts its least recently used entry, so the table
// never grows, and expiry is checked on lookup, so it needs no sweeping
// goroutine. An entry's fields (destination, last use, server set)
// change together, which atomics alone would not give, so each shard has
// a lock; with 64 shards, picks for different destinations rarely meet.
type localityTable[V any] struct {
	epoch  time.Time
	shards [localityShards]localityShard[V]
}

type localityShard[V any] struct {
	mu sync.Mutex
	// slots is allocated on the first insert, so a table for a few
	// destinations costs a few shards' worth of memory, not 16384 entries.
	slots []localityEntry[V]
	_     [32]byte // keep neighbouring shards' locks off one cache line
}

type localityEntry[V any] struct {
	dest    uint64
	lastUse time.Duration // since the table's epoch
	used    bool
	v       V
}

func newLocalityTable[V any]() *localityTable[V] {
	return &localityTable[V]{epoch: time.Now()}
}

// now reads the monotonic clock as an offset from the table's epoch.
func (t *localityTable[V]) now() time.Duration {
	return time.Since(t.epoch)
}

// locate returns dest's shard and the index of its set within the shard.
func (t *localityTable[V]) locate(dest uint64) (*localityShard[V], int) {
	h := Mix(dest)
	return &t.shards[h%localityShards], int((h / localityShards) % localitySets)
}

func live[V any](e *localityEntry[V], now time.Duration) bool {
	return e.used && now-e.lastUse < localityTTL
}

// find returns dest's live entry in set, or nil. s.mu must be held.
func (s *localityShard[V]) find(set int, dest uint64, now time.Duration) *localityEntry[V] {
	if s.slots == nil {
		return nil
	}
	ways := s.slots[set*localityWays : (set+1)*localityWays]
	for i := range ways {
		if e := &ways[i]; e.dest == dest && live(e, now) {
			return e
		}
	}
	return nil
}

// claim returns dest's entry in set, marked used now. If dest had no live
// entry, claim takes over a free, expired or else the least recently used
// slot and reports fresh; the caller must then reset v, whose old
// contents belong to another destination. s.mu must be held.
func (s *localityShard[V]) claim(set int, dest uint64, now time.Duration) (e *localityEntry[V], fresh bool) {
	if e := s.find(set, dest, now); e != nil {
		e.lastUse = now
		return e, false
	}
	if s.slots == nil {
		s.slots = make([]localityEntry[V], localitySets*localityWays)
	}
	ways := s.slots[set*localityWays : (set+1)*localityWays]
	victim := &ways[0]
	for i := range ways {
		e := &ways[i]
		if !live(e, now) {
			victim = e
			break
		}
		if e.lastUse < victim.lastUse {
			victim = e
		}
	}
	victim.dest, victim.lastUse, victim.used = dest, now, true
	return victim, true
}
