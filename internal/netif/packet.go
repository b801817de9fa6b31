package netif

import (
	"encoding/binary"
	"net"
	"net/netip"
)

const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherHeadLen  = 14
	// minFrameLen is Ethernet's minimum frame less the FCS. A GARP is
	// shorter; most drivers pad, but not every virtual one does, and a
	// runt is dropped by some switches.
	minFrameLen = 60

	arpLen = 28

	ipv6HeadLen    = 40
	protoICMPv6    = 58
	icmpTypeNA     = 136
	naLen          = 24 // type, code, checksum, flags, target
	optTargetLL    = 2
	optTargetLen   = 8
	naPayloadLen   = naLen + optTargetLen
	naFlagRouter   = 0x80
	naFlagOverride = 0x20
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodesMAC is ff02::1 mapped to Ethernet (RFC 2464 section 7).
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodes    = netip.MustParseAddr("ff02::1")
)

// garpFrame is a gratuitous ARP for vip from mac: a broadcast request with
// sender and target protocol address both vip, the ARP Announcement of RFC
// 5227. A request, not a reply, because Linux treats a request with sender
// = target as gratuitous and updates an existing entry even within its
// locktime, while a reply must also repeat the sender's MAC as target
// hardware address; the target hardware address is zero, as RFC 5227 and
// the kernel's own announcements have it.
func garpFrame(mac net.HardwareAddr, vip netip.Addr) []byte {
	b := make([]byte, minFrameLen)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[etherHeadLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // hardware type: Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1) // request
	ip := vip.As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip[:])
	copy(a[24:28], ip[:])
	return b
}

// naFrame is an unsolicited neighbour advertisement for vip from mac (RFC
// 4861 section 7.2.6): to all nodes, hop limit 255 (receivers drop
// anything less as possibly off-link), Solicited clear, Override set so
// that caches holding the previous master's MAC take ours, and the target
// link-layer address option. It is sent from vip itself, an address of the
// interface as the RFC asks, which needs no link-local address to exist.
// router sets the Router flag: a forwarding node that left it clear would
// be dropped from its neighbours' default router lists.
func naFrame(mac net.HardwareAddr, vip netip.Addr, router bool) []byte {
	b := make([]byte, etherHeadLen+ipv6HeadLen+naPayloadLen)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)

	h := b[etherHeadLen:]
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:6], naPayloadLen)
	h[6] = protoICMPv6
	h[7] = 255
	src, dst := vip.As16(), allNodes.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])

	m := h[ipv6HeadLen:]
	m[0] = icmpTypeNA
	m[4] = naFlagOverride
	if router {
		m[4] |= naFlagRouter
	}
	copy(m[8:24], src[:])
	m[24], m[25] = optTargetLL, optTargetLen/8
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, dst, m))
	return b
}

// icmpv6Checksum is the Internet checksum over the IPv6 pseudo-header
// (RFC 8200 section 8.1) and msg, whose checksum field must be zero.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var tail [8]byte
	binary.BigEndian.PutUint32(tail[0:4], uint32(len(msg)))
	tail[7] = protoICMPv6
	add(tail[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
