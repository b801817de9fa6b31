package proxyproto

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// MaxV1Len and MaxV2Len bound what AppendV1 and AppendV2 write, so a
// caller can size a buffer once.
const (
	MaxV1Len = v1MaxLen
	MaxV2Len = v2FixedLen + v2Inet6Len
)

// AppendV1 appends a v1 header for a TCP connection from src to dst and
// returns the extended buffer.
//
// IPv4-mapped IPv6 addresses (as a dual-stack listener reports IPv4
// clients) are sent as IPv4; when one side is IPv4 and the other IPv6 both
// are sent as IPv6. If either address is invalid it writes
// "PROXY UNKNOWN", which tells the receiver to use the connection's own
// addresses. It allocates only if b lacks capacity.
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	s, d, is4, ok := normalize(src, dst)
	if !ok {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	if is4 {
		b = append(b, "PROXY TCP4 "...)
	} else {
		b = append(b, "PROXY TCP6 "...)
	}
	b = s.Addr().AppendTo(b)
	b = append(b, ' ')
	b = d.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(s.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(d.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends a v2 PROXY header for a TCP connection from src to dst,
// without TLVs, and returns the extended buffer. Addresses are normalised
// as for AppendV1. If either address is invalid it writes a LOCAL header
// (what a health check sends), so the receiver uses the connection's own
// addresses. It allocates only if b lacks capacity.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2Sig...)
	s, d, is4, ok := normalize(src, dst)
	if !ok {
		return append(b, 0x20, 0x00, 0, 0) // v2 LOCAL, AF_UNSPEC, no block
	}
	if is4 {
		b = append(b, 0x21, 0x11, 0, v2Inet4Len)
		sa, da := s.Addr().As4(), d.Addr().As4()
		b = append(b, sa[:]...)
		b = append(b, da[:]...)
	} else {
		b = append(b, 0x21, 0x21, 0, v2Inet6Len)
		sa, da := s.Addr().As16(), d.Addr().As16()
		b = append(b, sa[:]...)
		b = append(b, da[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// normalize brings src and dst into one family, as both versions of the
// protocol require.
func normalize(src, dst netip.AddrPort) (s, d netip.AddrPort, is4, ok bool) {
	if !src.IsValid() || !dst.IsValid() {
		return s, d, false, false
	}
	sa := src.Addr().Unmap().WithZone("")
	da := dst.Addr().Unmap().WithZone("")
	if sa.Is4() && da.Is4() {
		return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), true, true
	}
	sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	return netip.AddrPortFrom(sa, src.Port()), netip.AddrPortFrom(da, dst.Port()), false, true
}
