//go:build linux

package xdp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// flowHash is the program's flow_hash (bpf/xdp.c): jhash2 of the ten
// native-order words of a flow key, initval 0. It depends on nothing but
// the packet, so every director maps a flow to the same ring entry.
func flowHash(src, dst netip.Addr, sport, dport uint16, proto uint8) uint32 {
	var k [40]byte
	s, d := src.Unmap(), dst.Unmap()
	family := uint8(6)
	if s.Is4() {
		family = 4
		a, b := s.As4(), d.As4()
		copy(k[0:], a[:])
		copy(k[16:], b[:])
	} else if s.IsValid() {
		a, b := s.As16(), d.As16()
		copy(k[0:], a[:])
		copy(k[16:], b[:])
	}
	binary.BigEndian.PutUint16(k[32:], sport)
	binary.BigEndian.PutUint16(k[34:], dport)
	k[36] = proto
	k[37] = family
	var w [10]uint32
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(k[4*i:]) // bpfel
	}
	a := uint32(0xdeadbeef + 10<<2)
	b, c := a, a
	mix := func() {
		a -= c
		a ^= bits.RotateLeft32(c, 4)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 6)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 8)
		b += a
		a -= c
		a ^= bits.RotateLeft32(c, 16)
		c += b
		b -= a
		b ^= bits.RotateLeft32(a, 19)
		a += c
		c -= b
		c ^= bits.RotateLeft32(b, 4)
		b += a
	}
	for i := 0; i < 9; i += 3 {
		a += w[i]
		b += w[i+1]
		c += w[i+2]
		mix()
	}
	a += w[9]
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

// RingIndex is the ring entry (0..RingSize-1) the program picks for a new
// flow of a service hashing the 5-tuple (hashSource false), or the client
// address and, with hashPort, its port. The control plane and the tests use
// it to predict where a flow goes.
func RingIndex(f Flow, hashSource, hashPort bool) uint32 {
	if !hashSource {
		return flowHash(f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port(), f.Proto) % RingSize
	}
	var sport uint16
	if hashPort {
		sport = f.Src.Port()
	}
	zero := netip.IPv4Unspecified()
	if !f.Src.Addr().Unmap().Is4() {
		zero = netip.IPv6Unspecified()
	}
	return flowHash(f.Src.Addr(), zero, sport, 0, 0) % RingSize
}
