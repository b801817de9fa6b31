package director

import (
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// The kernel program's types, under the names this package uses.
type (
	Mode       = xdp.Mode
	ServiceKey = xdp.ServiceKey
	KService   = xdp.Service
	Real       = xdp.Real
	Flow       = xdp.Flow
	Counters   = xdp.Counters
)

const (
	ModeDirect = xdp.ModeDirect
	ModeTunnel = xdp.ModeTunnel
	RingSize   = xdp.RingSize
	NoSlot     = xdp.NoSlot
)

// A ring is the scheduler's Maglev table: the same size.
var _ = [1]struct{}{}[RingSize-sched.MaglevSize]
