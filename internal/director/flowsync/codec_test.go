package flowsync

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bin")

var testKey = Key([]byte("0123456789abcdef-secret"))

func sample() Datagram {
	return Datagram{Node: "lb1", Seq: 1700000000000000001, Time: time.Unix(1700000000, 123), Entries: []Entry{
		{Kind: KindFlow, Proto: 6, Client: netip.MustParseAddrPort("192.168.0.50:40000"),
			VIP: netip.MustParseAddrPort("192.168.0.105:80"), Backend: netip.MustParseAddr("192.168.0.101")},
		{Kind: KindFlow, Proto: 17, Client: netip.MustParseAddrPort("[2001:db8::50]:5353"),
			VIP: netip.MustParseAddrPort("[2001:db8::105]:53"), Backend: netip.MustParseAddr("10.0.0.7")},
		{Kind: KindPersist, VIP: netip.MustParseAddrPort("192.168.0.105:0"), Group: GroupHash("shop"),
			Client: netip.MustParseAddrPort("192.168.0.0:0"), Backend: netip.MustParseAddr("192.168.0.102")},
		{Kind: KindPersist, VIP: netip.MustParseAddrPort("[2001:db8::105]:0"), Group: GroupHash("tcp/443"),
			Client: netip.MustParseAddrPort("[2001:db8::]:0"), Backend: netip.MustParseAddr("2001:db8::7")},
		{Kind: KindJoin},
		{Kind: KindDone},
	}}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, key := range [][]byte{nil, testKey} {
		d := sample()
		b, err := d.Append(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		size := HeaderLen(d.Node, key != nil)
		for _, e := range d.Entries {
			size += e.Len()
		}
		if len(b) != size {
			t.Errorf("key %v: %d bytes, HeaderLen+Len say %d", key != nil, len(b), size)
		}
		got, err := Parse(b, key)
		if err != nil {
			t.Fatal(err)
		}
		d.Authenticated = key != nil
		if diff := cmp.Diff(d, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
			cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
			cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("key %v: (-want +got)\n%s", key != nil, diff)
		}
	}
}

func TestAppendRejects(t *testing.T) {
	t.Parallel()
	full := func() Datagram {
		d := sample()
		d.Entries = nil
		e := sample().Entries[1] // an IPv6 flow, 57 bytes
		for len(d.Entries) < MaxEntries {
			d.Entries = append(d.Entries, e)
		}
		return d
	}
	cases := []struct {
		name string
		mod  func(*Datagram)
	}{
		{"no node", func(d *Datagram) { d.Node = "" }},
		{"long node", func(d *Datagram) { d.Node = string(make([]byte, MaxNode+1)) }},
		{"no entries", func(d *Datagram) { d.Entries = nil }},
		{"too big", func(d *Datagram) { *d = full() }},
		{"proto", func(d *Datagram) { d.Entries[0].Proto = 1 }},
		{"no backend", func(d *Datagram) { d.Entries[0].Backend = netip.Addr{} }},
		{"zoned", func(d *Datagram) { d.Entries[0].Backend = netip.MustParseAddr("fe80::1%eth0") }},
		{"mixed families", func(d *Datagram) { d.Entries[0].VIP = netip.MustParseAddrPort("[2001:db8::1]:80") }},
		{"persist port", func(d *Datagram) { d.Entries[2].Client = netip.MustParseAddrPort("192.168.0.0:1") }},
		{"join fields", func(d *Datagram) { d.Entries[4].Proto = 6 }},
		{"kind", func(d *Datagram) { d.Entries[0].Kind = 9 }},
	}
	for _, c := range cases {
		d := sample()
		c.mod(&d)
		if b, err := d.Append([]byte("x"), testKey); err == nil || string(b) != "x" {
			t.Errorf("%s: got %d bytes, %v; want an error and dst untouched", c.name, len(b), err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	d := sample()
	plain, _ := d.Append(nil, nil)
	sealed, _ := d.Append(nil, testKey)
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	set := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	node := fixedLen      // node name length
	count := node + 1 + 3 // entry count ("lb1")
	first := count + 1    // first entry's kind
	cases := []struct {
		name string
		b    []byte
		key  []byte
		want error
	}{
		{"empty", nil, nil, ErrMalformed},
		{"short", plain[:20], nil, ErrMalformed},
		{"magic", flip(plain, 0), nil, ErrMalformed},
		{"version", flip(plain, len(Magic)-1), nil, ErrMalformed},
		{"mac flag without mac", flip(plain, len(Magic)), nil, ErrMalformed},
		{"unknown flag", set(plain, len(Magic), 4), nil, ErrMalformed},
		{"trailing", append(bytes.Clone(plain), 0), nil, ErrMalformed},
		{"truncated", plain[:len(plain)-1], nil, ErrMalformed},
		{"truncated mid-entry", plain[:first+10], nil, ErrMalformed},
		{"zero node length", set(plain, node, 0), nil, ErrMalformed},
		{"long node length", set(plain, node, MaxNode+1), nil, ErrMalformed},
		{"zero entries", set(plain, count, 0), nil, ErrMalformed},
		{"more entries than sent", set(plain, count, 7), nil, ErrMalformed},
		{"unknown kind", set(plain, first, 7), nil, ErrMalformed},
		{"bad proto", set(plain, first+1, 1), nil, ErrMalformed},
		{"bad address length", set(plain, first+2, 5), nil, ErrMalformed},
		{"too long", make([]byte, MaxLen+1), nil, ErrMalformed},
		{"unauthenticated", plain, testKey, ErrAuth},
		{"forged", flip(sealed, first+3), testKey, ErrAuth},
		{"forged sequence", flip(sealed, len(Magic)+8), testKey, ErrAuth},
		{"bad mac", flip(sealed, len(sealed)-1), testKey, ErrAuth},
		{"truncated sealed", sealed[:len(sealed)-1], testKey, ErrAuth},
		{"other key", sealed, Key([]byte("another key of 16+ bytes")), ErrAuth},
	}
	for _, c := range cases {
		if _, err := Parse(c.b, c.key); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Without a key a sealed datagram is read, unchecked.
	if got, err := Parse(sealed, nil); err != nil || got.Authenticated || len(got.Entries) != 6 {
		t.Errorf("sealed without key: %+v %v", got, err)
	}
}

func TestKeyLabel(t *testing.T) {
	t.Parallel()
	// The hello's label is "fulcrum hello v1"; the sync key must differ
	// from it for the same secret.
	if bytes.Equal(Key([]byte("s")), mac([]byte("s"), []byte("fulcrum hello v1"))) {
		t.Fatal("sync key equals the hello key")
	}
}

// TestSeeds writes or checks the fuzz seeds in testdata.
func TestSeeds(t *testing.T) {
	d := sample()
	plain, _ := d.Append(nil, nil)
	sealed, _ := d.Append(nil, testKey)
	join, err := (&Datagram{Node: "lb2", Seq: 7, Time: time.Unix(1, 0), Entries: []Entry{{Kind: KindJoin}}}).Append(nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"plain.bin":     plain,
		"sealed.bin":    sealed,
		"truncated.bin": sealed[:len(sealed)/2],
		"join.bin":      join,
	}
	for name, b := range seeds {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s differs from the encoder's output (run with -update if the format changed on purpose)", path)
		}
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.bin")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	d := sample()
	b, _ := d.Append(nil, testKey)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range [][]byte{nil, testKey} {
			d, err := Parse(b, key)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuth) {
					t.Fatalf("error %v is neither malformed nor auth", err)
				}
				continue
			}
			// What parses re-encodes to the same bytes.
			var k []byte
			if b[len(Magic)]&flagMAC != 0 {
				if key == nil {
					continue // unchecked MAC: cannot re-seal
				}
				k = key
			}
			out, err := d.Append(nil, k)
			if err != nil {
				t.Fatalf("parsed %+v does not encode: %v", d, err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("re-encoded %x, got %x", out, b)
			}
		}
	})
}
