package director

import (
	"net"
	"net/netip"
	"time"
)

// The kernel program's types, as the CONTRACT of issue #12 defines them
// for package internal/director/xdp. They live here until that package
// lands; then this file becomes aliases of it.

// RingSize is the number of entries of a service's ring.
const RingSize = 65537

// NoSlot in a ring entry sends the packet to the kernel.
const NoSlot = ^uint32(0)

// Mode is how a packet reaches a backend.
type Mode uint8

const (
	ModeDirect Mode = iota
	ModeTunnel
)

// ServiceKey is a virtual service as the program matches it.
type ServiceKey struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
}

// KService is a service's settings in the program.
type KService struct {
	ID             uint32
	Mode           Mode
	HashSource     bool
	HashPort       bool
	PersistGroup   uint32
	PersistTimeout time.Duration
	PersistBits4   uint8
	PersistBits6   uint8
}

// Real is a slot: one backend of one service.
type Real struct {
	Addr      netip.Addr
	DstMAC    net.HardwareAddr
	SrcMAC    net.HardwareAddr
	IfIndex   int
	TunnelSrc netip.Addr
	Dead      bool
}

// Flow is a client → VIP flow.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

// Counters are a slot's counters.
type Counters struct{ Packets, Bytes, NewFlows uint64 }
