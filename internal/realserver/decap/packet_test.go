//go:build linux

package decap

import (
	"net"
	"net/netip"

	"github.com/fulcrum-lb/fulcrum/internal/realserver/decap/decaptest"
)

var (
	macDst = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	macSrc = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
)

func eth(etherType uint16, payload []byte) []byte {
	return decaptest.Eth(macDst, macSrc, etherType, payload)
}

func csum(b []byte) uint16 { return decaptest.Checksum(0, b) }

var ipv4, ipv6 = decaptest.IPv4, decaptest.IPv6

// udp is a bare UDP header and payload (checksum 0: the decapsulator
// never looks at it).
func udp(sport, dport uint16, payload []byte) []byte {
	return append([]byte{byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport), 0, byte(8 + len(payload)), 0, 0}, payload...)
}

// inner builds the packet a director tunnels: client to VIP, UDP.
func inner(client, vip netip.Addr, tc uint8) []byte {
	return decaptest.UDP(netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 53), tc, []byte("hello"))
}

func tunnel(src, dst netip.Addr, tc uint8, in []byte) []byte {
	return decaptest.Tunnel(macDst, macSrc, src, dst, tc, in)
}
