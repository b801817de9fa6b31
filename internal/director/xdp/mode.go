package xdp

import "fmt"

// Mode is how packets reach a service's backends.
type Mode uint8

const (
	// ModeDirect rewrites the destination MAC to the backend's (LVS-DR,
	// ipvsadm -g): the backend holds the VIP on a non-ARPing interface.
	ModeDirect Mode = iota + 1
	// ModeTunnel encapsulates the packet in an outer IPv4/IPv6 header to
	// the backend (LVS-TUN, ipvsadm -i).
	ModeTunnel
)

func (m Mode) String() string {
	switch m {
	case ModeDirect:
		return "direct"
	case ModeTunnel:
		return "tunnel"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}
