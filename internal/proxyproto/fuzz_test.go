package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadHeader checks, for any input, that ReadHeader does not panic,
// fails only with ErrInvalid (a bytes.Reader has no other errors), never
// consumes a byte past a header it accepts, and that an accepted header
// survives re-encoding.
func FuzzReadHeader(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "headers", "*"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/headers: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{r: bytes.NewReader(data)}
		h, err := ReadHeader(r)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got error %v, want one wrapping ErrInvalid", err)
			}
			return
		}
		consumed := data[:r.n]
		switch h.Version {
		case 1:
			if len(consumed) > v1MaxLen {
				t.Fatalf("v1 header of %d bytes, want at most %d", len(consumed), v1MaxLen)
			}
			if i := bytes.Index(consumed, []byte("\r\n")); i != len(consumed)-2 {
				t.Fatalf("consumed %q: first CRLF at %d, want it to end the read", consumed, i)
			}
		case 2:
			if want := v2FixedLen + int(binary.BigEndian.Uint16(data[14:16])); len(consumed) != want {
				t.Fatalf("consumed %d bytes of a v2 header declaring %d", len(consumed), want)
			}
		default:
			t.Fatalf("version %d", h.Version)
		}
		if h.HasAddrs() != (h.Transport != TransportUnspec) {
			t.Fatalf("%+v: addresses and transport disagree", h)
		}
		if !h.HasAddrs() {
			return
		}
		if h.Command != CommandProxy {
			t.Fatalf("%+v: addresses on a %v header", h, h.Command)
		}
		wantSrc, wantDst, _, _ := normalize(h.Source, h.Dest)
		for name, b := range map[string][]byte{
			"v1": AppendV1(nil, h.Source, h.Dest),
			"v2": AppendV2(nil, h.Source, h.Dest),
		} {
			h2, err := ReadHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: re-encoded %+v as %q, which does not parse: %v", name, h, b, err)
			}
			gotSrc, gotDst, _, _ := normalize(h2.Source, h2.Dest)
			if gotSrc != wantSrc || gotDst != wantDst {
				t.Fatalf("%s: round trip: got %v → %v, want %v → %v", name, gotSrc, gotDst, wantSrc, wantDst)
			}
		}
	})
}
