//go:build linux

package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Packet builders for the tests: plain byte slices, so that a test states
// exactly what goes in and what must come out.

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ether(dst, src net.HardwareAddr, typ uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:], dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], typ)
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

type v4opts struct {
	tos      uint8
	id       uint16
	fragOff  uint16 // flags and offset as on the wire (0x4000 DF, 0x2000 MF)
	ttl      uint8
	options  []byte // appended after the 20 bytes, ihl grows
	totDelta int    // added to the true total length
	ihl      int    // if set, overrides
}

func ipv4(src, dst netip.Addr, proto uint8, payload []byte, o v4opts) []byte {
	hl := 20 + len(o.options)
	b := make([]byte, hl, hl+len(payload))
	ihl := hl / 4
	if o.ihl != 0 {
		ihl = o.ihl
	}
	b[0] = 0x40 | byte(ihl)
	b[1] = o.tos
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)+o.totDelta))
	binary.BigEndian.PutUint16(b[4:], o.id)
	binary.BigEndian.PutUint16(b[6:], o.fragOff)
	b[8] = o.ttl
	if b[8] == 0 {
		b[8] = 64
	}
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], o.options)
	binary.BigEndian.PutUint16(b[10:], csum(b[:hl]))
	return append(b, payload...)
}

func ipv6(src, dst netip.Addr, next uint8, payload []byte, tclass uint8, label uint32) []byte {
	b := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(tclass)<<20|label&0xfffff)
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

// tcp is a SYN with no options (checksums are not the program's business).
func tcp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	b[12] = 5 << 4
	b[13] = 0x02
	binary.BigEndian.PutUint16(b[14:], 65535)
	return append(b, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func icmp(typ, code uint8, rest uint32, quoted []byte) []byte {
	b := make([]byte, 8, 8+len(quoted))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	b = append(b, quoted...)
	binary.BigEndian.PutUint16(b[2:], csum(b))
	return b
}
