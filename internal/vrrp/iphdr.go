package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ipv4Packet is what a receiver needs from an IPv4 packet read off a raw
// socket, which on Linux delivers the IP header with the payload.
type ipv4Packet struct {
	src, dst netip.Addr
	ttl      int
	proto    uint8
	payload  []byte
}

// parseIPv4 splits a raw IPv4 packet into its header fields and payload.
// The kernel has reassembled fragments and checked the header checksum
// before a raw socket sees the packet; this only guards the slicing.
func parseIPv4(b []byte) (ipv4Packet, error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return ipv4Packet{}, fmt.Errorf("vrrp: malformed IPv4 header: %w", ErrLength)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return ipv4Packet{}, fmt.Errorf("vrrp: IPv4 header length %d, total %d, read %d: %w", ihl, total, len(b), ErrLength)
	}
	return ipv4Packet{
		src:     netip.AddrFrom4([4]byte(b[12:16])),
		dst:     netip.AddrFrom4([4]byte(b[16:20])),
		ttl:     int(b[8]),
		proto:   b[9],
		payload: b[ihl:total],
	}, nil
}
