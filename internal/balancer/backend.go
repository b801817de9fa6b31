// Package balancer holds the live state of virtual services and their
// backends and decides where a new connection goes.
//
// The control plane builds an immutable *Service from each config snapshot;
// the data plane loads it once per connection and calls Pick. Per-backend
// counters and health are atomics on *Backend, which outlive reloads so a
// reload neither resets statistics nor forgets health.
package balancer

import (
	"net/netip"
	"sync/atomic"

	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// Backend is one real server's live state. All methods are safe for
// concurrent use and never block.
type Backend struct {
	// Addr is the backend's address; it identifies the backend within its
	// service for the life of the process.
	Addr netip.AddrPort

	weight   atomic.Int32
	maxConns atomic.Int64
	down     atomic.Bool // set by health checking; false (up) until told otherwise

	active   atomic.Int64
	total    atomic.Uint64
	failures atomic.Uint64
	bytesIn  atomic.Uint64 // client → backend
	bytesOut atomic.Uint64 // backend → client
}

var _ sched.Backend = (*Backend)(nil)

// NewBackend returns an up backend with the given weight and connection
// limit (0 = unlimited).
func NewBackend(addr netip.AddrPort, weight int, maxConns int) *Backend {
	b := &Backend{Addr: addr}
	b.weight.Store(int32(weight))
	b.maxConns.Store(int64(maxConns))
	return b
}

// Available reports whether b may take a new connection.
func (b *Backend) Available() bool {
	if b.down.Load() || b.weight.Load() <= 0 {
		return false
	}
	max := b.maxConns.Load()
	return max == 0 || b.active.Load() < max
}

// Weight is the current weight.
func (b *Backend) Weight() int { return int(b.weight.Load()) }

// SetWeight changes the weight; 0 stops new connections, existing ones
// continue.
func (b *Backend) SetWeight(w int) { b.weight.Store(int32(w)) }

// SetMaxConns changes the connection limit (0 = unlimited).
func (b *Backend) SetMaxConns(n int) { b.maxConns.Store(int64(n)) }

// MaxConns is the connection limit (0 = unlimited).
func (b *Backend) MaxConns() int { return int(b.maxConns.Load()) }

// Healthy reports whether health checking considers b up.
func (b *Backend) Healthy() bool { return !b.down.Load() }

// SetHealthy records a health verdict and reports whether it changed.
func (b *Backend) SetHealthy(up bool) (changed bool) {
	return b.down.CompareAndSwap(up, !up)
}

// Active is the number of connections in flight.
func (b *Backend) Active() int64 { return b.active.Load() }

// Acquire counts a new connection; Release must follow.
func (b *Backend) Acquire() {
	b.active.Add(1)
	b.total.Add(1)
}

// Release ends a connection counted by Acquire and adds the bytes it moved.
func (b *Backend) Release(in, out int64) {
	b.active.Add(-1)
	b.bytesIn.Add(uint64(in))
	b.bytesOut.Add(uint64(out))
}

// ConnectFailed counts a failed connect attempt.
func (b *Backend) ConnectFailed() { b.failures.Add(1) }

// Stats is a point-in-time copy of a backend's counters.
type Stats struct {
	Active         int64
	Total          uint64
	ConnectFailed  uint64
	BytesIn        uint64
	BytesOut       uint64
	Weight         int
	MaxConnections int
	Healthy        bool
}

// Stats reads b's counters.
func (b *Backend) Stats() Stats {
	return Stats{
		Active:         b.active.Load(),
		Total:          b.total.Load(),
		ConnectFailed:  b.failures.Load(),
		BytesIn:        b.bytesIn.Load(),
		BytesOut:       b.bytesOut.Load(),
		Weight:         b.Weight(),
		MaxConnections: b.MaxConns(),
		Healthy:        b.Healthy(),
	}
}

// Name identifies b to schedulers that place backends by name (maglev), so
// a reload that reorders backends moves as few clients as possible.
func (b *Backend) Name() string { return b.Addr.String() }
