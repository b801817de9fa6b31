package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var sentinels = []error{ErrVersion, ErrType, ErrLength, ErrChecksum, ErrFamily, ErrInterval, ErrAuth, ErrReplay}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzParseAdvert feeds whole packets (seeded with the captures in
// testdata/adverts) through the raw socket's IPv4 header parser and
// ParseAdvert, and through Authenticator.Open. Neither may panic or fail
// without one of the sentinel errors, and an accepted advert must survive
// Marshal and parse again unchanged. Input that is no IP packet is parsed
// as a bare advert from 10.0.0.1 to the IPv4 group. With fixChecksum the
// checksum field is corrected first, so that mutations reach the checks
// behind it instead of all failing there.
func FuzzParseAdvert(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "adverts", "*.pkt"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/adverts: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixChecksum bool) {
		src, dst, _, payload, ok := splitPacket(data)
		if !ok {
			src, dst, payload = netip.MustParseAddr("10.0.0.1"), GroupIPv4, data
		}
		if fixChecksum && len(payload) >= headerLen {
			payload = bytes.Clone(payload)
			payload[6], payload[7] = 0, 0
			c := checksum(payload, src, dst)
			payload[6], payload[7] = byte(c>>8), byte(c)
		}
		auth, err := NewAuthenticator(testKey)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := auth.Open(payload, src, dst); err != nil && !isSentinel(err) {
			t.Fatalf("Open: error %v wraps no sentinel", err)
		} else if err == nil {
			if _, err := auth.Open(payload, src, dst); !errors.Is(err, ErrReplay) {
				t.Fatalf("Open accepted %+v twice: %v", a, err)
			}
		}

		a, err := ParseAdvert(payload, src, dst)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("ParseAdvert: error %v wraps no sentinel", err)
			}
			return
		}
		b, err := a.Marshal(nil, src, dst)
		if err != nil {
			t.Fatalf("Marshal of parsed %+v: %v", a, err)
		}
		a2, err := ParseAdvert(b, src, dst)
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", a, err)
		}
		if diff := cmp.Diff(a, a2, addrCmp); diff != "" {
			t.Fatalf("round trip (-parsed +reparsed):\n%s", diff)
		}
		// The bytes match too, but for the reserved bits, which we zero,
		// and the checksum, whose 0x0000 and 0xffff are the same sum.
		in := bytes.Clone(payload)
		in[4] &= 0x0f
		if !bytes.Equal(in[:6], b[:6]) || !bytes.Equal(in[8:], b[8:]) {
			t.Fatalf("Marshal = % x, want % x", b, payload)
		}
	})
}
