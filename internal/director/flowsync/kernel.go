package flowsync

import "github.com/fulcrum-lb/fulcrum/internal/director/xdp"

// The kernel program's types: *xdp.Program is the daemon's Table and
// Events as it is.
type (
	// Flow is a client → VIP flow.
	Flow = xdp.Flow
	// NewFlow is a flow the kernel program created: Slot is the slot it
	// chose, Service the service's ring index, Persisted whether a
	// persistence entry (rather than the ring) chose it.
	NewFlow = xdp.NewFlow
)

var (
	_ Table  = (*xdp.Program)(nil)
	_ Events = (*xdp.Program)(nil)
)
