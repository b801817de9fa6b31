package hello

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the admin fuzz seeds in testdata")

func sampleAdmin() AdminTable {
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	return AdminTable{Node: "lb1", Group: "web", Time: t0.Add(time.Second), Entries: []AdminEntry{
		{Service: "web", Backend: "192.0.2.11:80", State: "drain", Time: t0, Origin: "lb1"},
		{Service: "web/api", Backend: "[2001:db8::1]:8080", State: "maint", Time: t0, Origin: "lb2"},
		{Service: "web", Backend: "192.0.2.12:80", State: "ready", Time: t0, Origin: "lb1"},
	}}
}

func keyed(k []byte) func(string) []byte { return func(string) []byte { return k } }

func TestAdminRoundTrip(t *testing.T) {
	t.Parallel()
	key := testKey
	for _, k := range [][]byte{nil, key} {
		in := sampleAdmin()
		b, err := in.Append(nil, k)
		if err != nil {
			t.Fatal(err)
		}
		if !IsAdmin(b) {
			t.Fatal("IsAdmin: false")
		}
		if _, err := Parse(b, nil); err == nil {
			t.Error("an admin datagram parses as a hello")
		}
		out, err := ParseAdmin(b, keyed(k))
		if err != nil {
			t.Fatalf("ParseAdmin (key %v): %v", k != nil, err)
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Errorf("round trip (-in +out):\n%s", diff)
		}
	}
}

func TestAdminParseErrors(t *testing.T) {
	t.Parallel()
	key := testKey
	in := sampleAdmin()
	plain, _ := in.Append(nil, nil)
	sealed, _ := in.Append(nil, key)
	forged := append([]byte(nil), sealed...)
	forged[len(AdminMagic)+9+5] ^= 1 // a byte of the node name
	tests := []struct {
		name string
		b    []byte
		key  []byte
		want error
	}{
		{"truncated", plain[:len(plain)-3], nil, ErrMalformed},
		{"trailing byte", append(append([]byte(nil), plain...), 0), nil, ErrMalformed},
		{"unknown state", func() []byte {
			b := append([]byte(nil), plain...)
			b[len(AdminMagic)+9+4+4+1] = 9 // the first entry's state
			return b
		}(), nil, ErrMalformed},
		{"unsealed, key expected", plain, key, ErrAuth},
		{"sealed, no key here", sealed, nil, ErrAuth},
		{"forged", forged, key, ErrAuth},
		{"wrong key", sealed, Key([]byte("another secret of 16+ bytes")), ErrAuth},
		{"a hello", func() []byte { m := sample(); b, _ := m.Append(nil, nil); return b }(), nil, ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := ParseAdmin(tt.b, keyed(tt.key)); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	tooMany := AdminTable{Node: "a", Group: "g", Entries: make([]AdminEntry, MaxAdminEntries+1)}
	if _, err := tooMany.Append(nil, nil); err == nil {
		t.Error("Append with too many entries: no error")
	}
}

func FuzzParseAdmin(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/admin-*.bin")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key := testKey
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range [][]byte{nil, key} {
			tab, err := ParseAdmin(b, keyed(k))
			if err != nil {
				continue
			}
			// What parses re-encodes to the same bytes.
			again, err := tab.Append(nil, k)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", tab, err)
			}
			if string(again) != string(b) {
				t.Fatalf("re-encoded differently:\n%x\n%x", b, again)
			}
		}
	})
}

// TestAdminSeeds keeps the fuzz seeds in testdata what the encoder writes.
func TestAdminSeeds(t *testing.T) {
	t.Parallel()
	in := sampleAdmin()
	plain, _ := in.Append(nil, nil)
	sealed, _ := in.Append(nil, testKey)
	empty := AdminTable{Node: "lb2", Group: "web", Time: in.Time}
	none, _ := empty.Append(nil, nil)
	for name, want := range map[string][]byte{"admin-plain.bin": plain, "admin-sealed.bin": sealed, "admin-empty.bin": none, "admin-truncated.bin": plain[:40]} {
		path := filepath.Join("testdata", name)
		if *updateSeeds {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-seeds)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from what the encoder writes (run with -update-seeds)", path)
		}
	}
}
