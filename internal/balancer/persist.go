package balancer

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Persistence maps a client network (the client address masked to a
// prefix, like ipvsadm -M) to the backend it was last sent to, for Timeout
// after its last connection. It is bounded: a full shard first drops
// expired entries, then evicts the entries closest to expiry.
//
// All methods are safe for concurrent use. Lookups take a shard read lock
// only; the expiry refresh is an atomic store.
type Persistence struct {
	timeout  time.Duration
	bits4    int
	bits6    int
	perShard int
	now      func() time.Time
	shards   [persistShards]persistShard
}

const persistShards = 64

type persistShard struct {
	mu sync.RWMutex
	m  map[netip.Addr]*persistEntry
}

type persistEntry struct {
	backend atomic.Pointer[Backend]
	expires atomic.Int64 // unix nanoseconds
}

// NewPersistence builds a table. bits4 and bits6 are the prefix lengths
// that group IPv4 and IPv6 clients; maxEntries bounds the whole table.
func NewPersistence(timeout time.Duration, bits4, bits6, maxEntries int) *Persistence {
	per := maxEntries / persistShards
	if per < 1 {
		per = 1
	}
	p := &Persistence{timeout: timeout, bits4: bits4, bits6: bits6, perShard: per, now: time.Now}
	for i := range p.shards {
		p.shards[i].m = make(map[netip.Addr]*persistEntry)
	}
	return p
}

// Matches reports whether p was built with these settings, so a reload can
// keep the table (and every client's pinning) when they did not change.
func (p *Persistence) Matches(timeout time.Duration, bits4, bits6, maxEntries int) bool {
	per := max(maxEntries/persistShards, 1)
	return p.timeout == timeout && p.bits4 == bits4 && p.bits6 == bits6 && p.perShard == per
}

// Timeout is the entry lifetime after the last connection.
func (p *Persistence) Timeout() time.Duration { return p.timeout }

func (p *Persistence) key(client netip.Addr) netip.Addr {
	client = client.Unmap()
	bits := p.bits6
	if client.Is4() {
		bits = p.bits4
	}
	pfx, err := client.Prefix(bits)
	if err != nil {
		return client
	}
	return pfx.Addr()
}

func (p *Persistence) shard(k netip.Addr) *persistShard {
	b := k.As16()
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return &p.shards[h%persistShards]
}

// Lookup returns the backend pinned for client, or nil, and restarts the
// entry's timer.
func (p *Persistence) Lookup(client netip.Addr) *Backend {
	k := p.key(client)
	s := p.shard(k)
	s.mu.RLock()
	e := s.m[k]
	s.mu.RUnlock()
	if e == nil {
		return nil
	}
	now := p.now().UnixNano()
	if e.expires.Load() <= now {
		return nil
	}
	e.expires.Store(now + int64(p.timeout))
	return e.backend.Load()
}

// Store pins client to b.
func (p *Persistence) Store(client netip.Addr, b *Backend) {
	k := p.key(client)
	s := p.shard(k)
	now := p.now().UnixNano()
	s.mu.RLock()
	e := s.m[k]
	s.mu.RUnlock()
	if e != nil {
		e.backend.Store(b)
		e.expires.Store(now + int64(p.timeout))
		return
	}
	e = &persistEntry{}
	e.backend.Store(b)
	e.expires.Store(now + int64(p.timeout))
	s.mu.Lock()
	if len(s.m) >= p.perShard {
		s.evictLocked(now, p.perShard)
	}
	s.m[k] = e
	s.mu.Unlock()
}

// evictLocked makes room for one entry: expired entries go first; if none
// expired, the one closest to expiry among a random sample goes.
func (s *persistShard) evictLocked(now int64, limit int) {
	for k, e := range s.m {
		if e.expires.Load() <= now {
			delete(s.m, k)
		}
	}
	if len(s.m) < limit {
		return
	}
	const sample = 8
	var victim netip.Addr
	soonest := int64(1<<63 - 1)
	n := 0
	for k, e := range s.m { // map iteration order is random
		if x := e.expires.Load(); x < soonest {
			soonest, victim = x, k
		}
		if n++; n == sample {
			break
		}
	}
	delete(s.m, victim)
}

// Len is the number of entries, expired ones included until swept.
func (p *Persistence) Len() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Sweep drops expired entries and returns how many it dropped.
func (p *Persistence) Sweep() int {
	now := p.now().UnixNano()
	dropped := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires.Load() <= now {
				delete(s.m, k)
				dropped++
			}
		}
		s.mu.Unlock()
	}
	return dropped
}

// Run sweeps expired entries periodically until ctx is done.
func (p *Persistence) Run(ctx context.Context) error {
	every := p.timeout / 4
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.Sweep()
		}
	}
}
