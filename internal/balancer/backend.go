// Package balancer holds the live state of virtual services and their
// backends and decides where a new connection goes.
//
// The control plane builds an immutable *Service from each config snapshot;
// the data plane loads it once per connection and calls Pick. Per-backend
// counters and health are atomics on *Backend, which outlive reloads so a
// reload neither resets statistics nor forgets health.
package balancer

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// Backend is one real server's live state. All methods are safe for
// concurrent use and never block.
type Backend struct {
	// Addr is the backend's address; it identifies the backend within its
	// service for the life of the process.
	Addr netip.AddrPort

	weight   atomic.Int32 // configured (or admin-set) weight
	maxConns atomic.Int64
	down     atomic.Bool   // set by health checking; false (up) until told otherwise
	admin    atomic.Uint32 // AdminState set by an operator; survives reloads

	// Slow start: while rampEnd is in the future, Weight ramps from a
	// tenth of the weight to all of it in ten steps; steps, not a smooth
	// line, so that table-based schedulers rebuild ten times, not per pick.
	rampStart atomic.Int64 // unix nanoseconds; 0 = no ramp
	rampEnd   atomic.Int64

	observer atomic.Pointer[Observer]

	active   atomic.Int64
	total    atomic.Uint64
	failures atomic.Uint64
	bytesIn  atomic.Uint64 // client → backend
	bytesOut atomic.Uint64 // backend → client

	req requestStats // HTTP services only
	// lifetimes of TCP connections relayed to the backend, from connect
	// to close
	lifetimes Histogram
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
	if b.down.Load() || b.weight.Load() <= 0 || b.admin.Load() != uint32(AdminReady) {
		return false
	}
	max := b.maxConns.Load()
	return max == 0 || b.active.Load() < max
}

// Weight is the current effective weight: the configured weight, reduced
// while a slow start ramps it up.
func (b *Backend) Weight() int {
	w := int(b.weight.Load())
	start := b.rampStart.Load()
	if start == 0 {
		return w
	}
	end := b.rampEnd.Load()
	now := time.Now().UnixNano()
	if now >= end {
		b.rampStart.CompareAndSwap(start, 0)
		return w
	}
	step := 1 + (now-start)*10/(end-start) // 1..10
	return max(1, w*int(step)/10)
}

// SlowStart ramps the effective weight up over d, starting now (a backend
// that just recovered). d <= 0 ends any ramp.
func (b *Backend) SlowStart(d time.Duration) {
	if d <= 0 {
		b.rampStart.Store(0)
		return
	}
	now := time.Now().UnixNano()
	b.rampEnd.Store(now + int64(d))
	b.rampStart.Store(now)
}

// Ramping reports whether a slow start is in progress.
func (b *Backend) Ramping() bool {
	start := b.rampStart.Load()
	return start != 0 && time.Now().UnixNano() < b.rampEnd.Load()
}

// ConfiguredWeight is the weight without slow start.
func (b *Backend) ConfiguredWeight() int { return int(b.weight.Load()) }

// SetWeight changes the weight; 0 stops new connections, existing ones
// continue.
func (b *Backend) SetWeight(w int) { b.weight.Store(int32(w)) }

// SetMaxConns changes the connection limit (0 = unlimited).
func (b *Backend) SetMaxConns(n int) { b.maxConns.Store(int64(n)) }

// MaxConns is the connection limit (0 = unlimited).
func (b *Backend) MaxConns() int { return int(b.maxConns.Load()) }

// AdminState is what an operator decided about a backend, independently
// of its health: health checks keep running in every state.
type AdminState uint32

const (
	// AdminReady: the backend takes traffic when it is healthy.
	AdminReady AdminState = iota
	// AdminDrain: no new connections, not even from persistent clients;
	// established connections and UDP sessions continue until they end.
	AdminDrain
	// AdminMaint: no new connections, and established ones are treated
	// as those of a backend that went down: kept when the service is
	// quiescent, else closed (TCP, after removal_grace) or moved (UDP).
	AdminMaint
)

func (s AdminState) String() string {
	switch s {
	case AdminReady:
		return "ready"
	case AdminDrain:
		return "drain"
	case AdminMaint:
		return "maint"
	}
	return fmt.Sprintf("AdminState(%d)", uint32(s))
}

// ParseAdminState reads "ready", "drain" or "maint".
func ParseAdminState(s string) (AdminState, error) {
	for st := AdminReady; st <= AdminMaint; st++ {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown admin state %q: want ready, drain or maint", s)
}

// AdminState is the operator's decision about b.
func (b *Backend) AdminState() AdminState { return AdminState(b.admin.Load()) }

// SetAdminState records an operator's decision and reports the previous
// one.
func (b *Backend) SetAdminState(s AdminState) (prev AdminState) {
	return AdminState(b.admin.Swap(uint32(s)))
}

// Evicted reports whether b's established traffic should leave it when
// its service is not quiescent: it is down, or in maintenance.
func (b *Backend) Evicted() bool {
	return b.down.Load() || b.admin.Load() == uint32(AdminMaint)
}

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

// Observer hears about the outcome of real connections to a backend:
// passive health checking. Both methods are called from connection
// goroutines and must not block.
type Observer interface {
	Failed(reason string)
	Succeeded()
}

// SetObserver installs (or with nil removes) the passive-check observer.
func (b *Backend) SetObserver(o Observer) {
	if o == nil {
		b.observer.Store(nil)
		return
	}
	b.observer.Store(&o)
}

// ConnectFailed counts a failed connect attempt and tells the observer.
func (b *Backend) ConnectFailed() {
	b.failures.Add(1)
	if o := b.observer.Load(); o != nil {
		(*o).Failed("connect failed")
	}
}

// Connected tells the observer that a connect succeeded.
func (b *Backend) Connected() {
	if o := b.observer.Load(); o != nil {
		(*o).Succeeded()
	}
}

// Stats is a point-in-time copy of a backend's counters.
type Stats struct {
	Active         int64
	Total          uint64
	ConnectFailed  uint64
	BytesIn        uint64
	BytesOut       uint64
	Weight         int // effective
	MaxConnections int
	Healthy        bool
	Ramping        bool
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
		Ramping:        b.Ramping(),
	}
}

// Name identifies b to schedulers that place backends by name (maglev), so
// a reload that reorders backends moves as few clients as possible.
func (b *Backend) Name() string { return b.Addr.String() }
