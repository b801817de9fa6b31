package hello

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testKey = Key([]byte("0123456789abcdef-secret"))

func sample() Message {
	return Message{Node: "lb1", Group: "web", VRID: 51, State: "master", Priority: 150,
		Time: time.Unix(1700000000, 123), ConfigHash: "0123456789abcdef"}
}

func TestRoundTrip(t *testing.T) {
	for _, key := range [][]byte{nil, testKey} {
		m := sample()
		b, err := m.Append(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b, key)
		if err != nil {
			t.Fatal(err)
		}
		m.Authenticated = key != nil
		if got != m {
			t.Errorf("key %v: got %+v, want %+v", key != nil, got, m)
		}
	}
	m := sample()
	m.ConfigHash = ""
	b, _ := m.Append(nil, nil)
	if got, err := Parse(b, nil); err != nil || got.ConfigHash != "" {
		t.Errorf("no hash: %+v %v", got, err)
	}
}

func TestParseRejects(t *testing.T) {
	m := sample()
	plain, _ := m.Append(nil, nil)
	sealed, _ := m.Append(nil, testKey)
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
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
		{"flags", flip(plain, len(Magic)+0) /* sets MAC flag without one */, nil, ErrMalformed},
		{"unknown flag", func() []byte { c := bytes.Clone(plain); c[len(Magic)] = 4; return c }(), nil, ErrMalformed},
		{"state", func() []byte { c := bytes.Clone(plain); c[len(Magic)+2] = 9; return c }(), nil, ErrMalformed},
		{"trailing", append(bytes.Clone(plain), 0), nil, ErrMalformed},
		{"truncated name", plain[:len(plain)-1], nil, ErrMalformed},
		{"zero node length", func() []byte { c := bytes.Clone(plain); c[fixedLen] = 0; return c }(), nil, ErrMalformed},
		{"too long", make([]byte, MaxLen+1), nil, ErrMalformed},
		{"unauthenticated", plain, testKey, ErrAuth},
		{"forged", flip(sealed, fixedLen+1), testKey, ErrAuth},
		{"bad mac", flip(sealed, len(sealed)-1), testKey, ErrAuth},
		{"other key", sealed, Key([]byte("another key of 16+ bytes")), ErrAuth},
	}
	for _, c := range cases {
		if _, err := Parse(c.b, c.key); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Without a key a sealed hello is read, unchecked.
	if got, err := Parse(sealed, nil); err != nil || got.Authenticated {
		t.Errorf("sealed without key: %+v %v", got, err)
	}
}

func TestAppendRejects(t *testing.T) {
	for _, m := range []Message{
		{Node: "", Group: "g", State: "master"},
		{Node: string(make([]byte, 256)), Group: "g", State: "master"},
		{Node: "n", Group: "g", State: "leader"},
		{Node: "n", Group: "g", State: "master", ConfigHash: "xyz"},
	} {
		if _, err := m.Append(nil, nil); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

func TestKeyDiffersFromSecret(t *testing.T) {
	if bytes.Equal(Key([]byte("0123456789abcdef")), []byte("0123456789abcdef")) {
		t.Fatal("key not derived")
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
	m := sample()
	b, _ := m.Append(nil, testKey)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range [][]byte{nil, testKey} {
			m, err := Parse(b, key)
			if err != nil {
				continue
			}
			// What parses re-encodes to the same bytes.
			var k []byte
			if len(b) > 0 && b[len(Magic)]&flagMAC != 0 {
				if key == nil {
					continue // unchecked MAC: cannot re-seal
				}
				k = key
			}
			out, err := m.Append(nil, k)
			if err != nil {
				t.Fatalf("parsed %+v does not encode: %v", m, err)
			}
			if m.ConfigHash == "" {
				continue // zero hash and absent hash are one encoding
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("re-encoded %x, got %x", out, b)
			}
		}
	})
}
