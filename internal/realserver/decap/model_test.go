//go:build linux

package decap

import (
	"encoding/binary"
	"net/netip"
)

// model is what bpf/decap.c is meant to do, written plainly in Go: the
// fuzz test holds the kernel's answers to it. It returns the verdict, the
// frame out and the counter that moves.
func model(frame []byte, locals, vips map[netip.Addr]bool) (verdict uint32, out []byte, stat string) {
	const pass, drop = 2, 1
	untouched := func(s string) (uint32, []byte, string) { return pass, frame, s }
	if len(frame) < 14 {
		return untouched("passed_malformed")
	}
	var hlen, plen int
	var proto, ecn byte
	var dst netip.Addr
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		ip := frame[14:]
		if len(ip) < 20 {
			return untouched("passed_malformed")
		}
		if ip[9] != 4 && ip[9] != 41 {
			return untouched("passed_not_tunnel")
		}
		if ip[0]>>4 != 4 || ip[0]&15 < 5 {
			return untouched("passed_malformed")
		}
		if ip[0]&15 != 5 {
			return untouched("passed_options")
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return untouched("passed_fragment")
		}
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot < 20 || tot > len(ip) || csum(ip[:20]) != 0 {
			return untouched("passed_malformed")
		}
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		hlen, plen, proto, ecn = 20, tot-20, ip[9], ip[1]&3
	case 0x86dd:
		ip := frame[14:]
		if len(ip) < 40 {
			return untouched("passed_malformed")
		}
		if ip[6] != 4 && ip[6] != 41 {
			return untouched("passed_not_tunnel")
		}
		plen = int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || 40+plen > len(ip) {
			return untouched("passed_malformed")
		}
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		hlen, proto, ecn = 40, ip[6], (ip[1]>>4)&3
	default:
		return untouched("passed_not_tunnel")
	}
	if !locals[dst] {
		return untouched("passed_not_local")
	}
	in := frame[14+hlen:]
	var vip netip.Addr
	if proto == 4 {
		if len(in) < 20 {
			return untouched("passed_malformed")
		}
		tot := int(binary.BigEndian.Uint16(in[2:]))
		if in[0]>>4 != 4 || in[0]&15 < 5 || tot > plen || tot < int(in[0]&15)*4 {
			return untouched("passed_malformed")
		}
		vip = netip.AddrFrom4([4]byte(in[16:20]))
	} else {
		if len(in) < 40 {
			return untouched("passed_malformed")
		}
		if in[0]>>4 != 6 || 40+int(binary.BigEndian.Uint16(in[4:])) > plen {
			return untouched("passed_malformed")
		}
		vip = netip.AddrFrom16([16]byte(in[24:40]))
	}
	if !vips[vip] {
		return untouched("passed_not_vip")
	}
	out = append(append([]byte{}, frame[:12]...), 0x08, 0x00)
	if proto == 41 {
		out[12], out[13] = 0x86, 0xdd
	}
	out = append(out, in...)
	if ecn == 3 {
		n := out[14:]
		if proto == 4 {
			if n[1]&3 == 0 {
				return drop, frame, "dropped_ecn"
			}
			// RFC 1624, eqn. 3, as the program does it: the inner
			// checksum is updated, not recomputed (nor checked).
			old := uint32(binary.BigEndian.Uint16(n[0:]))
			n[1] |= 3
			s := uint32(^binary.BigEndian.Uint16(n[10:])) + (^old & 0xffff) + uint32(binary.BigEndian.Uint16(n[0:]))
			s = s&0xffff + s>>16
			s = s&0xffff + s>>16
			binary.BigEndian.PutUint16(n[10:], ^uint16(s))
		} else {
			if (n[1]>>4)&3 == 0 {
				return drop, frame, "dropped_ecn"
			}
			n[1] |= 3 << 4
		}
	}
	names := map[[2]bool]string{{false, false}: "decap_4in4", {false, true}: "decap_6in4", {true, false}: "decap_4in6", {true, true}: "decap_6in6"}
	return pass, out, names[[2]bool{hlen == 40, proto == 41}]
}
