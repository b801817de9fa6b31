package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// TestUDPFrame checks the flood's frame field by field, and that the IPv4
// header checksum verifies (the one's-complement sum of the header with
// its checksum is 0xffff).
func TestUDPFrame(t *testing.T) {
	dmac, _ := net.ParseMAC("02:00:00:00:00:01")
	smac, _ := net.ParseMAC("02:00:00:00:00:02")
	src := netip.MustParseAddr("10.216.0.10")
	dst := netip.MustParseAddrPort("10.216.0.100:9000")
	f := udpFrame(dmac, smac, src, dst, 4321, 18)
	if len(f) != 60 {
		t.Fatalf("got a %d-byte frame, want 60", len(f))
	}
	if net.HardwareAddr(f[0:6]).String() != dmac.String() || net.HardwareAddr(f[6:12]).String() != smac.String() {
		t.Errorf("got MACs %v <- %v, want %v <- %v", net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12]), dmac, smac)
	}
	if et := binary.BigEndian.Uint16(f[12:14]); et != 0x0800 {
		t.Errorf("got ethertype %#x, want 0x0800", et)
	}
	ip := f[14:34]
	if ip[0] != 0x45 || ip[9] != 17 || ip[8] == 0 {
		t.Errorf("got version/IHL %#x, protocol %d, TTL %d; want 0x45, 17, > 0", ip[0], ip[9], ip[8])
	}
	if n := binary.BigEndian.Uint16(ip[2:4]); n != 46 {
		t.Errorf("got IP total length %d, want 46", n)
	}
	if a, _ := netip.AddrFromSlice(ip[12:16]); a != src {
		t.Errorf("got source %v, want %v", a, src)
	}
	if a, _ := netip.AddrFromSlice(ip[16:20]); a != dst.Addr() {
		t.Errorf("got destination %v, want %v", a, dst.Addr())
	}
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if sum != 0xffff {
		t.Errorf("IPv4 header checksum does not verify: sum %#x", sum)
	}
	udp := f[34:42]
	if sp, dp, n := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]), binary.BigEndian.Uint16(udp[4:6]); sp != 4321 || dp != 9000 || n != 26 {
		t.Errorf("got UDP %d -> %d length %d, want 4321 -> 9000 length 26", sp, dp, n)
	}
}
