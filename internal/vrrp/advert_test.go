package vrrp

import (
	"bytes"
	stdcmp "cmp"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	l1      = netip.MustParseAddr("192.168.0.101")
	l2      = netip.MustParseAddr("192.168.0.102")
	v1      = netip.MustParseAddr("fe80::1")
	v2      = netip.MustParseAddr("fe80::2")
)

// testKey is the key mkseeds.py seals its authenticated captures with.
var testKey = []byte("fulcrum-test-key-0123456789abcdef")

func addrs(s ...string) []netip.Addr {
	var a []netip.Addr
	for _, x := range s {
		a = append(a, netip.MustParseAddr(x))
	}
	return a
}

// splitPacket takes a whole IPv4 or IPv6 packet apart as the raw socket
// would: IPv4 through the same parser, IPv6 by its fixed header.
func splitPacket(b []byte) (src, dst netip.Addr, ttl int, payload []byte, ok bool) {
	if len(b) == 0 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		p, err := parseIPv4(b)
		if err != nil {
			return
		}
		return p.src, p.dst, p.ttl, p.payload, true
	case 6:
		if len(b) < 40 {
			return
		}
		return netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), int(b[7]), b[40:], true
	}
	return
}

func readCapture(t *testing.T, name string) (src, dst netip.Addr, ttl int, payload []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "adverts", name))
	if err != nil {
		t.Fatal(err)
	}
	src, dst, ttl, payload, ok := splitPacket(b)
	if !ok {
		t.Fatalf("%s: not an IP packet", name)
	}
	return src, dst, ttl, payload
}

// TestCaptures parses packets built by testdata/mkseeds.py, a second
// implementation of the wire format (keepalived's checksum, our trailer).
func TestCaptures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		auth    bool
		want    Advert
		wantErr error
		wantTTL int
		hash    string // config hash the trailer carries
	}{
		{file: "v4_keepalived.pkt", want: Advert{51, 150, time.Second, addrs("192.168.0.105")}},
		{file: "v4_fast_two_vips.pkt", want: Advert{51, 100, 100 * time.Millisecond, addrs("192.168.0.105", "192.168.0.106")}},
		{file: "v4_priority0.pkt", want: Advert{51, 0, 100 * time.Millisecond, addrs("192.168.0.105")}},
		{file: "v4_owner_router_alert.pkt", want: Advert{7, 255, MaxInterval, addrs("10.1.1.1", "10.1.1.2", "10.1.1.3")}},
		{file: "v4_unicast.pkt", want: Advert{51, 150, 100 * time.Millisecond, addrs("192.168.0.105")}},
		{file: "v6_multicast.pkt", want: Advert{51, 150, 100 * time.Millisecond, addrs("fe80::100", "2001:db8::100")}},
		{file: "v6_unicast.pkt", want: Advert{9, 200, time.Second, addrs("2001:db8::100")}},
		{file: "v4_ttl64.pkt", want: Advert{51, 150, time.Second, addrs("192.168.0.105")}, wantTTL: 64},
		{file: "v4_bad_checksum.pkt", wantErr: ErrChecksum},
		{file: "v4_version2.pkt", wantErr: ErrVersion},
		{file: "v4_zero_interval.pkt", wantErr: ErrInterval},
		{file: "v4_count_mismatch.pkt", wantErr: ErrLength},
		{file: "v4_auth.pkt", wantErr: ErrLength}, // what a plain VRRP receiver sees
		{file: "v4_auth.pkt", auth: true, want: Advert{51, 150, 100 * time.Millisecond, addrs("192.168.0.105")}},
		{file: "v6_auth.pkt", auth: true, want: Advert{51, 150, 100 * time.Millisecond, addrs("2001:db8::100")}},
		{file: "v4_keepalived.pkt", auth: true, wantErr: ErrAuth},
		{file: "v4_auth_hash.pkt", auth: true, want: Advert{51, 150, 100 * time.Millisecond, addrs("192.168.0.105")}, hash: "3f2a9c1e77b0d1c2"},
		{file: "v4_auth_hash.pkt", wantErr: ErrLength},
	}
	for _, tt := range tests {
		src, dst, ttl, payload := readCapture(t, tt.file)
		var got Advert
		var err error
		if tt.auth {
			a, aerr := NewAuthenticator(testKey)
			if aerr != nil {
				t.Fatal(aerr)
			}
			var h []byte
			got, h, err = a.OpenHash(payload, src, dst)
			if err == nil && hex.EncodeToString(h) != tt.hash {
				t.Errorf("%s: config hash %x, want %q", tt.file, h, tt.hash)
			}
		} else {
			got, err = ParseAdvert(payload, src, dst)
		}
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s (auth %v): got error %v, want %v", tt.file, tt.auth, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (auth %v): %v", tt.file, tt.auth, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
			t.Errorf("%s: advert (-want +got):\n%s", tt.file, diff)
		}
		if want := stdcmp.Or(tt.wantTTL, 255); ttl != want {
			t.Errorf("%s: ttl %d, want %d", tt.file, ttl, want)
		}
		if tt.auth {
			continue
		}
		// Our encoder must produce the capture's bytes exactly.
		b, err := got.Marshal(nil, src, dst)
		if err != nil {
			t.Errorf("%s: Marshal: %v", tt.file, err)
		} else if !bytes.Equal(b, payload) {
			t.Errorf("%s: Marshal = % x, want % x", tt.file, b, payload)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	var many4, many6 []netip.Addr
	for i := range 255 {
		many4 = append(many4, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		many6 = append(many6, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
	}
	tests := []struct {
		name     string
		src, dst netip.Addr
		a        Advert
	}{
		{"v4 multicast", l1, GroupIPv4, Advert{1, 100, 10 * time.Millisecond, addrs("10.0.0.1")}},
		{"v4 unicast", l1, l2, Advert{255, 255, MaxInterval, addrs("10.0.0.1", "10.0.0.2")}},
		{"v4 255 addresses", l1, GroupIPv4, Advert{51, 1, time.Second, many4}},
		{"v6 multicast", v1, GroupIPv6, Advert{51, 254, 100 * time.Millisecond, addrs("fe80::100")}},
		{"v6 255 addresses", v1, v2, Advert{51, 0, 20 * time.Millisecond, many6}},
	}
	for _, tt := range tests {
		prefix := []byte("prefix")
		b, err := tt.a.Marshal(prefix, tt.src, tt.dst)
		if err != nil {
			t.Errorf("%s: Marshal: %v", tt.name, err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Errorf("%s: Marshal did not append to dst", tt.name)
		}
		got, err := ParseAdvert(b[len(prefix):], tt.src, tt.dst)
		if err != nil {
			t.Errorf("%s: ParseAdvert: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.a, got, addrCmp); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", tt.name, diff)
		}
		// The checksum binds the pseudo-header: another destination fails.
		if _, err := ParseAdvert(b[len(prefix):], tt.src, tt.src); !errors.Is(err, ErrChecksum) {
			t.Errorf("%s: parsed for another destination: %v, want ErrChecksum", tt.name, err)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	t.Parallel()
	ok := Advert{51, 100, 100 * time.Millisecond, addrs("10.0.0.1")}
	tests := []struct {
		name     string
		modify   func(*Advert)
		src, dst netip.Addr
		want     error
	}{
		{"no addresses", func(a *Advert) { a.Addrs = nil }, l1, GroupIPv4, ErrLength},
		{"256 addresses", func(a *Advert) { a.Addrs = make([]netip.Addr, 256) }, l1, GroupIPv4, ErrLength},
		{"zero interval", func(a *Advert) { a.MaxAdvertInterval = 0 }, l1, GroupIPv4, ErrInterval},
		{"15ms interval", func(a *Advert) { a.MaxAdvertInterval = 15 * time.Millisecond }, l1, GroupIPv4, ErrInterval},
		{"interval over 40.95s", func(a *Advert) { a.MaxAdvertInterval = 41 * time.Second }, l1, GroupIPv4, ErrInterval},
		{"IPv6 address in IPv4 advert", func(a *Advert) { a.Addrs = addrs("2001:db8::1") }, l1, GroupIPv4, ErrFamily},
		{"IPv4 address in IPv6 advert", func(*Advert) {}, v1, GroupIPv6, ErrFamily},
		{"IPv4-mapped address", func(a *Advert) { a.Addrs = addrs("::ffff:10.0.0.1") }, v1, GroupIPv6, ErrFamily},
		{"mixed source and destination", func(*Advert) {}, l1, GroupIPv6, ErrFamily},
		{"no source", func(*Advert) {}, netip.Addr{}, GroupIPv4, ErrFamily},
	}
	for _, tt := range tests {
		a := ok
		tt.modify(&a)
		if _, err := a.Marshal(nil, tt.src, tt.dst); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good, err := Advert{51, 100, 100 * time.Millisecond, addrs("10.0.0.1", "10.0.0.2")}.Marshal(nil, l1, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	// fix recomputes the checksum after a mutation, so that only the
	// mutated field is wrong.
	fix := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		c := checksum(b, l1, GroupIPv4)
		b[6], b[7] = byte(c>>8), byte(c)
		return b
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"empty", func([]byte) []byte { return nil }, ErrLength},
		{"header only", func(b []byte) []byte { return b[:8] }, ErrLength},
		{"one address short", func(b []byte) []byte { return b[:12] }, ErrLength},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, ErrLength},
		{"count zero", func(b []byte) []byte { b[3] = 0; return fix(b[:8]) }, ErrLength},
		{"version 2", func(b []byte) []byte { b[0] = 2<<4 | 1; return fix(b) }, ErrVersion},
		{"version 4", func(b []byte) []byte { b[0] = 4<<4 | 1; return fix(b) }, ErrVersion},
		{"type 0", func(b []byte) []byte { b[0] = 3 << 4; return fix(b) }, ErrType},
		{"checksum", func(b []byte) []byte { b[6] ^= 0x80; return b }, ErrChecksum},
		{"priority flipped", func(b []byte) []byte { b[2] ^= 1; return b }, ErrChecksum},
		{"zero interval", func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return fix(b) }, ErrInterval},
	}
	for _, tt := range tests {
		b := tt.mutate(bytes.Clone(good))
		if _, err := ParseAdvert(b, l1, GroupIPv4); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	// Reserved bits are ignored on receipt (RFC 9568 section 5.2.6).
	b := bytes.Clone(good)
	b[4] |= 0xf0
	if a, err := ParseAdvert(fix(b), l1, GroupIPv4); err != nil || a.MaxAdvertInterval != 100*time.Millisecond {
		t.Errorf("reserved bits set: %+v, %v; want the 100ms advert", a, err)
	}
	// An IPv4 advert read as if it came over IPv6 has the wrong length.
	if _, err := ParseAdvert(good, v1, GroupIPv6); !errors.Is(err, ErrLength) {
		t.Errorf("IPv4 advert parsed as IPv6: %v, want ErrLength", err)
	}
}

func TestParseIPv4(t *testing.T) {
	t.Parallel()
	_, _, _, payload := readCapture(t, "v4_owner_router_alert.pkt")
	if len(payload) != 8+3*4 {
		t.Errorf("payload of %d bytes after a header with options, want 20", len(payload))
	}
	for _, b := range [][]byte{
		nil,
		make([]byte, 19),
		append([]byte{0x44}, make([]byte, 19)...),             // IHL 4
		append([]byte{0x45, 0, 0, 10}, make([]byte, 16)...),   // total below IHL
		append([]byte{0x45, 0, 0x10, 0}, make([]byte, 16)...), // total beyond the read
		append([]byte{0x65}, make([]byte, 19)...),             // version 6
	} {
		if _, err := parseIPv4(b); !errors.Is(err, ErrLength) {
			t.Errorf("parseIPv4(% x): %v, want ErrLength", b, err)
		}
	}
}
