//go:build linux

package decap

import (
	"encoding/binary"
	"net/netip"
)

// Builders of the frames the tests feed the program.

var (
	macDst = []byte{0x02, 0, 0, 0, 0, 0x02}
	macSrc = []byte{0x02, 0, 0, 0, 0, 0x01}
)

func eth(etherType uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, macDst...), macSrc...), byte(etherType>>8), byte(etherType))
	return append(b, payload...)
}

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ipv4 builds an IPv4 header (with options when opts is not empty) and
// payload, with a correct checksum.
func ipv4(src, dst netip.Addr, proto, tos uint8, fragOff uint16, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	h := make([]byte, hl)
	h[0] = 0x40 | byte(hl/4)
	h[1] = tos
	binary.BigEndian.PutUint16(h[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[8] = 64
	h[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(h[12:], s4[:])
	copy(h[16:], d4[:])
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return append(h, payload...)
}

// ipv6 builds an IPv6 header with traffic class tc and payload.
func ipv6(src, dst netip.Addr, next, tc uint8, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60 | tc>>4
	h[1] = tc << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// udp builds a UDP header and payload (checksum 0 for IPv4 is allowed;
// the decapsulator never looks at it, the e2e test computes real ones).
func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// inner builds the packet a director tunnels: client to VIP, UDP.
func inner(client, vip netip.Addr, tc uint8) []byte {
	u := udp(40000, 53, []byte("hello"))
	if vip.Is4() {
		return ipv4(client, vip, 17, tc, 0, nil, u)
	}
	return ipv6(client, vip, 17, tc, u)
}

// tunnel wraps in (IPv4 or IPv6, by the version of its first byte) in an
// outer header from src to dst.
func tunnel(src, dst netip.Addr, tc uint8, in []byte) []byte {
	proto := uint8(4)
	if in[0]>>4 == 6 {
		proto = 41
	}
	if dst.Is4() {
		return eth(0x0800, ipv4(src, dst, proto, tc, 0, nil, in))
	}
	return eth(0x86dd, ipv6(src, dst, proto, tc, in))
}
