package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is VRRP's IP protocol number (RFC 9568 section 5.1.1.4).
const Protocol = 112

// Link-scope multicast groups adverts are sent to (RFC 9568 section 5.1).
var (
	GroupIPv4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	GroupIPv6 = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
)

const (
	version    = 3
	typeAdvert = 1
	headerLen  = 8
	// MaxInterval is the largest advertisement interval the 12-bit
	// centisecond field can carry.
	MaxInterval = 4095 * centisecond
	centisecond = 10 * time.Millisecond
)

// Errors ParseAdvert (and Marshal, for the last three) wrap, so that a
// receiver can count dropped packets by reason with errors.Is.
var (
	ErrVersion  = errors.New("not VRRP version 3")
	ErrType     = errors.New("not an advertisement")
	ErrLength   = errors.New("length does not match the address count")
	ErrChecksum = errors.New("bad checksum")
	ErrFamily   = errors.New("address family mismatch")
	ErrInterval = errors.New("advertisement interval out of range")
)

// Advert is a VRRPv3 advertisement (RFC 9568 section 5.2).
type Advert struct {
	VRID     uint8
	Priority uint8 // 0: the master is leaving; 255: the address owner
	// MaxAdvertInterval has centisecond resolution on the wire, from 10ms
	// to MaxInterval.
	MaxAdvertInterval time.Duration
	// Addrs are the virtual addresses, all of the family of the packet
	// carrying them: an advert's family is its IP header's, never mixed.
	Addrs []netip.Addr
}

func addrLen(is4 bool) int {
	if is4 {
		return 4
	}
	return 16
}

// Marshal appends a to dst as it goes on the wire from src to dstAddr, with
// the checksum computed over a pseudo-header of src and dstAddr.
//
// RFC 9568 section 5.2.8 asks for a pseudo-header for both families. For
// IPv4 that has been read two ways: keepalived (and Wireshark) include the
// IPv4 pseudo-header (source, destination, zero, protocol, length), some
// routers (Cisco) include none, and keepalived's v3_checksum_as_v2 option
// exists to talk to those. We include it, as keepalived does by default;
// the IPv6-style layout of RFC 8200 sums to the same value for IPv4
// addresses, so there is only one answer. For unicast the destination in
// the pseudo-header is the peer's address (old keepalived releases used the
// multicast group; its old_unicast_checksum option still does).
func (a Advert) Marshal(dst []byte, src, dstAddr netip.Addr) ([]byte, error) {
	is4, err := packetFamily(src, dstAddr)
	if err != nil {
		return dst, err
	}
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return dst, fmt.Errorf("vrrp: marshal: %d addresses: %w", len(a.Addrs), ErrLength)
	}
	cs := a.MaxAdvertInterval / centisecond
	if a.MaxAdvertInterval%centisecond != 0 || cs < 1 || a.MaxAdvertInterval > MaxInterval {
		return dst, fmt.Errorf("vrrp: marshal: interval %v (want a multiple of 10ms in [10ms, %v]): %w",
			a.MaxAdvertInterval, MaxInterval, ErrInterval)
	}
	for _, v := range a.Addrs {
		if v.Is4() != is4 || v.Is4In6() {
			return dst, fmt.Errorf("vrrp: marshal: address %v in a %s advert: %w", v, familyName(is4), ErrFamily)
		}
	}
	start := len(dst)
	dst = append(dst,
		version<<4|typeAdvert, a.VRID, a.Priority, uint8(len(a.Addrs)),
		uint8(cs>>8), uint8(cs), 0, 0)
	for _, v := range a.Addrs {
		if is4 {
			b := v.As4()
			dst = append(dst, b[:]...)
		} else {
			b := v.As16()
			dst = append(dst, b[:]...)
		}
	}
	binary.BigEndian.PutUint16(dst[start+6:], checksum(dst[start:], src, dstAddr))
	return dst, nil
}

// ParseAdvert parses and validates an advert received from src to dst: the
// VRRP message only, without the IP header. It checks everything RFC 9568
// section 7.1 asks of the packet itself: version, type, a length that
// exactly matches the address count, a non-zero interval and the checksum.
// Whether it is for us (VRID, TTL) is the receiver's business.
func ParseAdvert(b []byte, src, dst netip.Addr) (Advert, error) {
	is4, err := packetFamily(src, dst)
	if err != nil {
		return Advert{}, err
	}
	if len(b) < headerLen {
		return Advert{}, fmt.Errorf("vrrp: %d-byte packet: %w", len(b), ErrLength)
	}
	if v := b[0] >> 4; v != version {
		return Advert{}, fmt.Errorf("vrrp: version %d: %w", v, ErrVersion)
	}
	if t := b[0] & 0x0f; t != typeAdvert {
		return Advert{}, fmt.Errorf("vrrp: type %d: %w", t, ErrType)
	}
	n := int(b[3])
	if want := headerLen + n*addrLen(is4); n == 0 || len(b) != want {
		return Advert{}, fmt.Errorf("vrrp: %d bytes for %d %s addresses: %w", len(b), n, familyName(is4), ErrLength)
	}
	if checksum(b, src, dst) != 0 {
		return Advert{}, fmt.Errorf("vrrp: from %v: %w", src, ErrChecksum)
	}
	// The top 4 bits of the interval are reserved: ignored on receipt.
	cs := binary.BigEndian.Uint16(b[4:6]) & 0x0fff
	if cs == 0 {
		return Advert{}, fmt.Errorf("vrrp: from %v: zero interval: %w", src, ErrInterval)
	}
	a := Advert{
		VRID:              b[1],
		Priority:          b[2],
		MaxAdvertInterval: time.Duration(cs) * centisecond,
		Addrs:             make([]netip.Addr, n),
	}
	for i, p := 0, b[headerLen:]; i < n; i++ {
		if is4 {
			a.Addrs[i] = netip.AddrFrom4([4]byte(p[:4]))
			p = p[4:]
		} else {
			a.Addrs[i] = netip.AddrFrom16([16]byte(p[:16]))
			p = p[16:]
			if a.Addrs[i].Is4In6() {
				// Marshal refuses these, as packetFamily does for peers.
				return Advert{}, fmt.Errorf("vrrp: from %v: IPv4-mapped address %v in an IPv6 advert: %w", src, a.Addrs[i], ErrFamily)
			}
		}
	}
	return a, nil
}

// packetFamily checks that src and dst are both IPv4 or both IPv6 and
// reports which. IPv4-mapped IPv6 addresses count as IPv6: they never
// appear on a VRRP wire, so accepting them would only hide a caller's bug.
func packetFamily(src, dst netip.Addr) (is4 bool, err error) {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return false, fmt.Errorf("vrrp: packet from %v to %v: %w", src, dst, ErrFamily)
	}
	return src.Is4(), nil
}

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// checksum is the Internet checksum of msg preceded by the pseudo-header
// for src and dst: IPv4's (RFC 768) or IPv6's (RFC 8200 section 8.1), with
// VRRP as the protocol. Over a message that carries its checksum the result
// is 0.
func checksum(msg []byte, src, dst netip.Addr) uint16 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = sum16(sum, s[:])
		sum = sum16(sum, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = sum16(sum, s[:])
		sum = sum16(sum, d[:])
		sum += uint32(len(msg)) >> 16 // the IPv6 pseudo-header length is 32 bits
	}
	sum += uint32(len(msg)) & 0xffff
	sum += Protocol
	sum = sum16(sum, msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// sum16 adds b to sum as big-endian 16-bit words, padding an odd last byte
// with zero. Carries are folded often enough that sum cannot overflow for
// any packet IP can carry.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
		if sum >= 1<<31 {
			sum = sum>>16 + sum&0xffff
		}
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
