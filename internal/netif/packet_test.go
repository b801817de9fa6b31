package netif

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}

// unhex reads hex with spaces and newlines for readability.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGARPFrame(t *testing.T) {
	t.Parallel()
	want := unhex(t, `
		ffffffffffff 02005e100001 0806
		0001 0800 06 04 0001
		02005e100001 c000020a
		000000000000 c000020a
		000000000000000000000000000000000000`) // padding to 60 bytes
	got := garpFrame(testMAC, netip.MustParseAddr("192.0.2.10"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	if len(got) != minFrameLen {
		t.Errorf("got %d bytes, want %d", len(got), minFrameLen)
	}
}

func TestNAFrame(t *testing.T) {
	t.Parallel()
	// Checksums computed apart from this package, and accepted by the
	// kernel in TestAcquireRelease.
	tests := []struct {
		name   string
		router bool
		flags  string
		sum    string
	}{
		{name: "host", flags: "20", sum: "9afc"},
		{name: "router", router: true, flags: "a0", sum: "1afc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := unhex(t, `
				333300000001 02005e100001 86dd
				60000000 0020 3a ff
				20010db8000000000000000000000010
				ff020000000000000000000000000001
				88 00 `+tt.sum+` `+tt.flags+`000000
				20010db8000000000000000000000010
				02 01 02005e100001`)
			got := naFrame(testMAC, netip.MustParseAddr("2001:db8::10"), tt.router)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("frame (-want +got):\n%s", diff)
			}
		})
	}
}

// TestICMPv6ChecksumVerifies checks the receiver's side: a message with
// its checksum in place sums to zero, for odd lengths too.
func TestICMPv6ChecksumVerifies(t *testing.T) {
	t.Parallel()
	src := netip.MustParseAddr("fd00::1").As16()
	dst := netip.MustParseAddr("ff02::1").As16()
	for n := 4; n < 40; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i*37 + n)
		}
		msg[2], msg[3] = 0, 0
		sum := icmpv6Checksum(src, dst, msg)
		msg[2], msg[3] = byte(sum>>8), byte(sum)
		if got := icmpv6Checksum(src, dst, msg); got != 0 {
			t.Errorf("%d bytes: sum with checksum in place %#04x, want 0", n, got)
		}
	}
	// RFC 1071's worked example, without the pseudo-header's share.
	msg := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	var zero [16]byte
	// The pseudo-header adds the length (8) and next header (58).
	if got, want := icmpv6Checksum(zero, zero, msg), ^uint16(0xddf2+8+58); got != want {
		t.Errorf("checksum %#04x, want %#04x", got, want)
	}
}
