// Package sched chooses a backend for a new connection or request.
//
// Every algorithm of Linux IPVS is here (rr, wrr, lc, wlc, sed, nq, sh, dh,
// lblc, lblcr, fo, ovf, mh, twos) together with fulcrum's own p2c, maglev
// and random. L4 and L7 share them: a
// scheduler sees backends only through the Backend interface and a
// connection only through a Key, so it never depends on how the caller
// proxies traffic.
package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// Backend is what a scheduler may read of a backend. Implementations keep
// these values in atomics: every method is called concurrently from many
// connection goroutines and must not block.
type Backend interface {
	// Available reports whether the backend may take a new connection:
	// healthy, enabled, effective weight above zero and below its
	// connection limit. Schedulers never pick an unavailable backend.
	Available() bool
	// Weight is the current effective weight (>= 0). It may change at any
	// time (admin action, slow start); weighted schedulers follow it.
	Weight() int
	// Active is the number of connections or requests in flight.
	Active() int64
}

// Named may be implemented by a Backend that has a stable name, typically
// its address. maglev derives a backend's place in the table from its name
// when it has one, so a reload that reorders, adds or removes backends
// moves only the keys it has to; otherwise the backend's position in the
// slice stands in for it. Name must not change for the Backend's lifetime.
type Named interface {
	Name() string
}

// Key describes the connection being scheduled. The caller hashes what the
// algorithm needs once, so picking itself never allocates.
type Key struct {
	// Source is a hash of the client (its address, its address and port
	// with hash_port, or for L7 a header or cookie value). sh, mh and
	// maglev use it.
	Source uint64
	// Dest is a hash of the destination (for L4 the address the client
	// connected to; for L7 the Host or path). dh, lblc, lblcr use it.
	Dest uint64
	// Rand is a per-connection random value; random and p2c use it when
	// non-zero so tests can be deterministic, else they draw their own.
	Rand uint64
}

// Scheduler picks one of the backends it was built with.
//
// Pick is safe for concurrent use by any number of goroutines and returns
// the index of the chosen backend in the slice passed to New, or -1 when
// no backend is available. It does not allocate, except that the one pick
// which first sees the backends' weights or availability change may build
// a new lookup table (wrr, sh, dh, maglev).
type Scheduler interface {
	Pick(k Key) int
}

// ErrUnknown is returned by New for an algorithm name it does not know.
var ErrUnknown = errors.New("unknown scheduler")

// Factory builds a scheduler over a fixed set of backends. The slice is not
// modified afterwards; a reload builds a new scheduler.
type Factory func(backends []Backend) Scheduler

var registry = map[string]Factory{}

// register is called from each algorithm's init.
func register(name string, f Factory) {
	if _, dup := registry[name]; dup {
		panic("sched: duplicate registration of " + name)
	}
	registry[name] = f
}

// New builds the scheduler called name over backends.
func New(name string, backends []Backend) (Scheduler, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("sched: %w %q (known: %v)", ErrUnknown, name, Names())
	}
	return f(backends), nil
}

// Names lists every registered algorithm, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HashAddr hashes an address for use in a Key. It does not allocate.
func HashAddr(a netip.Addr) uint64 {
	b := a.As16()
	// FNV-1a over the 16 bytes, then a final avalanche (splitmix64) so that
	// neighbouring addresses spread over the whole range.
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return Mix(h)
}

// HashAddrPort hashes an address and port for use in a Key, for hashing
// schedulers that should spread one client's flows (IPVS's sh-port and
// mh-port flags). It does not allocate.
func HashAddrPort(ap netip.AddrPort) uint64 {
	return Mix(HashAddr(ap.Addr()) + uint64(ap.Port())*golden)
}

// HashString hashes a string for use in a Key. It does not allocate.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return Mix(h)
}

// Mix is the splitmix64 finaliser.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
