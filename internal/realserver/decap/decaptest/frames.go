// Package decaptest builds the frames the decapsulator's tests feed it:
// Ethernet, IPv4, IPv6, UDP with correct checksums, and their IP-in-IP
// encapsulation, by hand, as a director would send them.
package decaptest

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Eth prepends an Ethernet header.
func Eth(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	b := append(append(append(make([]byte, 0, 14+len(payload)), dst...), src...), byte(etherType>>8), byte(etherType))
	return append(b, payload...)
}

// Checksum is the Internet checksum of b (RFC 1071), with sum the
// running sum of what came before (a pseudo-header).
func Checksum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// IPv4 builds an IPv4 header (with options when opts is not empty) and
// payload, with a correct header checksum.
func IPv4(src, dst netip.Addr, proto, tos uint8, fragOff uint16, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	h := make([]byte, hl, hl+len(payload))
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
	binary.BigEndian.PutUint16(h[10:], Checksum(0, h))
	return append(h, payload...)
}

// IPv6 builds an IPv6 header with traffic class tc and payload.
func IPv6(src, dst netip.Addr, next, tc uint8, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
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

// UDP builds a UDP datagram from src to dst, checksummed with the
// pseudo-header of their family, wrapped in its IP header (traffic class
// tc).
func UDP(src, dst netip.AddrPort, tc uint8, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return transport(src.Addr(), dst.Addr(), 17, 6, tc, append(u, payload...))
}

// TCPSyn builds a TCP SYN from src to dst offering mss, in its IP header.
func TCPSyn(src, dst netip.AddrPort, seq uint32, mss uint16) []byte {
	h := make([]byte, 24)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], seq)
	h[12] = 6 << 4 // data offset: 24 bytes
	h[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(h[14:], 65535)
	h[20], h[21] = 2, 4 // MSS option
	binary.BigEndian.PutUint16(h[22:], mss)
	return transport(src.Addr(), dst.Addr(), 6, 16, 0, h)
}

// transport fills in the checksum (at offset csumAt) of a UDP or TCP
// segment over the pseudo-header, and wraps the segment in its IP header.
func transport(src, dst netip.Addr, proto uint8, csumAt int, tc uint8, seg []byte) []byte {
	var sum uint32
	for _, a := range []netip.Addr{src, dst} {
		b := a.AsSlice()
		for i := 0; i < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	sum += uint32(proto) + uint32(len(seg))
	c := Checksum(sum, seg)
	if c == 0 && proto == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[csumAt:], c)
	if src.Is4() {
		return IPv4(src, dst, proto, tc, 0, nil, seg)
	}
	return IPv6(src, dst, proto, tc, seg)
}

// Tunnel wraps the IP packet in (IPv4 or IPv6, by its first byte) in an
// outer header from src to dst with traffic class tc, protocol 4 or 41,
// and an Ethernet header.
func Tunnel(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, tc uint8, in []byte) []byte {
	proto := uint8(4)
	if in[0]>>4 == 6 {
		proto = 41
	}
	if dst.Is4() {
		return Eth(dstMAC, srcMAC, 0x0800, IPv4(src, dst, proto, tc, 0, nil, in))
	}
	return Eth(dstMAC, srcMAC, 0x86dd, IPv6(src, dst, proto, tc, in))
}
