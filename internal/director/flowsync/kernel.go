package flowsync

import "net/netip"

// The kernel program's types, as the CONTRACT of issue #12 defines them
// for package internal/director/xdp. They live here until that package
// lands on main; then they become aliases of it, so that *xdp.Program
// satisfies Table and Events as it is.

// Flow is a client → VIP flow.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

// NewFlow is a flow the kernel program created: Slot is the slot it
// chose, Service the service's ring index, Persisted whether a
// persistence entry (rather than the ring) chose it.
type NewFlow struct {
	Flow      Flow
	Slot      uint32
	Service   uint32
	Persisted bool
}
