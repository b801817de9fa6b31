package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

var (
	tcp4Src = netip.MustParseAddrPort("192.0.2.1:56324")
	tcp4Dst = netip.MustParseAddrPort("198.51.100.7:443")
)

func TestReadHeaderTestdata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want Header
		rest string // what must remain unread after the header
	}{
		{file: "v1-tcp4.bin", want: Header{Version: 1, Command: CommandProxy, Transport: TransportTCP, Source: tcp4Src, Dest: tcp4Dst}, rest: "GET / HTTP/1.1\r\n\r\n"},
		{file: "v1-tcp6.bin", want: Header{Version: 1, Command: CommandProxy, Transport: TransportTCP,
			Source: netip.MustParseAddrPort("[2001:db8::1]:65535"), Dest: netip.MustParseAddrPort("[2001:db8::ff]:80")}, rest: "hello"},
		{file: "v1-tcp6-mapped.bin", want: Header{Version: 1, Command: CommandProxy, Transport: TransportTCP,
			Source: netip.MustParseAddrPort("[::ffff:192.0.2.1]:1"), Dest: netip.MustParseAddrPort("[::1]:0")}},
		{file: "v1-unknown.bin", want: Header{Version: 1, Command: CommandProxy}, rest: "PAYLOAD"},
		{file: "v1-unknown-long.bin", want: Header{Version: 1, Command: CommandProxy}, rest: "X"},
		{file: "v2-tcp4.bin", want: Header{Version: 2, Command: CommandProxy, Transport: TransportTCP, Source: tcp4Src, Dest: tcp4Dst}, rest: "PAYLOAD"},
		{file: "v2-tcp6.bin", want: Header{Version: 2, Command: CommandProxy, Transport: TransportTCP,
			Source: netip.MustParseAddrPort("[2001:db8::1]:65535"), Dest: netip.MustParseAddrPort("[2001:db8::ff]:80")}},
		{file: "v2-udp4.bin", want: Header{Version: 2, Command: CommandProxy, Transport: TransportUDP,
			Source: netip.MustParseAddrPort("10.0.0.1:53"), Dest: netip.MustParseAddrPort("10.0.0.2:53")}},
		{file: "v2-tcp4-tlv.bin", want: Header{Version: 2, Command: CommandProxy, Transport: TransportTCP, Source: tcp4Src, Dest: tcp4Dst}, rest: "after-tlv"},
		{file: "v2-local.bin", want: Header{Version: 2, Command: CommandLocal}, rest: "PAYLOAD"},
		{file: "v2-local-inet.bin", want: Header{Version: 2, Command: CommandLocal}, rest: "X"},
		{file: "v2-unspec.bin", want: Header{Version: 2, Command: CommandProxy}},
		{file: "v2-unix.bin", want: Header{Version: 2, Command: CommandProxy}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data := readTestdata(t, tt.file)
			for name, r := range map[string]io.Reader{
				"whole":    bytes.NewReader(data),
				"bytewise": iotest.OneByteReader(bytes.NewReader(data)),
			} {
				got, err := ReadHeader(r)
				if err != nil {
					t.Fatalf("%s: ReadHeader: got error %v, want nil", name, err)
				}
				if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
					t.Errorf("%s: header mismatch (-want +got):\n%s", name, diff)
				}
				rest, _ := io.ReadAll(r)
				if string(rest) != tt.rest {
					t.Errorf("%s: left unread: got %q, want %q", name, rest, tt.rest)
				}
			}
		})
	}
}

func TestReadHeaderInvalid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "headers", "bad-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad-* seeds: %v", err)
	}
	inline := map[string]string{
		"empty":            "",
		"short v1":         "PROXY TCP4",
		"short v2":         "\r\n\r\n\x00\r\nQUIT\n\x21",
		"v1 cut before lf": "PROXY TCP4 192.0.2.1 198.51.100.7 1 2\r",
		"v1 sign in port":  "PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n",
		"v1 extra field":   "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n",
		"v1 lower case":    "PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n",
		"v1 unknownx":      "PROXY UNKNOWNX\r\n\r\n",
		"v1 ipv4 in tcp6":  "PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
		"v1 bad address":   "PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n",
		"v1 trailing sp":   "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n",
		"v1 no crlf 107":   "PROXY TCP6 " + strings.Repeat("1", 200),
	}
	type tc struct{ name, data string }
	var tests []tc
	for _, f := range files {
		tests = append(tests, tc{filepath.Base(f), string(readTestdata(t, filepath.Base(f)))})
	}
	for name, data := range inline {
		tests = append(tests, tc{name, data})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &countingReader{r: strings.NewReader(tt.data)}
			h, err := ReadHeader(r)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ReadHeader(%q): got %+v, %v; want an error wrapping ErrInvalid", tt.data, h, err)
			}
			if r.n > v2FixedLen+65535 {
				t.Errorf("read %d bytes before failing", r.n)
			}
		})
	}
}

// TestReadHeaderStopsAtCRLF checks the v1 reader against a stream that
// never ends: it must return as soon as the line is complete.
func TestReadHeaderStopsAtCRLF(t *testing.T) {
	t.Parallel()
	line := "PROXY TCP4 1.2.3.4 5.6.7.8 9 10\r\n"
	r := &countingReader{r: io.MultiReader(strings.NewReader(line), neverEnding('x'))}
	h, err := ReadHeader(r)
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if r.n != len(line) {
		t.Errorf("consumed %d bytes, want %d", r.n, len(line))
	}
	if got, want := h.Source, netip.MustParseAddrPort("1.2.3.4:9"); got != want {
		t.Errorf("source: got %v, want %v", got, want)
	}
}

func TestReadHeaderIOError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := ReadHeader(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want the read error and not ErrInvalid", err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		src, dst           netip.AddrPort
		wantSrc, wantDst   netip.AddrPort // zero: same as src, dst
		wantNoAddrs        bool
		wantV1, wantV2Head string
	}{
		{name: "tcp4", src: tcp4Src, dst: tcp4Dst, wantV1: "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"},
		{name: "tcp6", src: netip.MustParseAddrPort("[2001:db8::1]:1"), dst: netip.MustParseAddrPort("[::1]:65535"),
			wantV1: "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n"},
		{name: "mapped v4 unmapped", src: netip.MustParseAddrPort("[::ffff:192.0.2.1]:56324"), dst: netip.MustParseAddrPort("[::ffff:198.51.100.7]:443"),
			wantSrc: tcp4Src, wantDst: tcp4Dst, wantV1: "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"},
		{name: "mixed families go v6", src: tcp4Src, dst: netip.MustParseAddrPort("[2001:db8::ff]:80"),
			wantSrc: netip.MustParseAddrPort("[::ffff:192.0.2.1]:56324"), wantV1: "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::ff 56324 80\r\n"},
		{name: "zone dropped", src: netip.MustParseAddrPort("[fe80::1%eth0]:5"), dst: netip.MustParseAddrPort("[fe80::2]:6"),
			wantSrc: netip.MustParseAddrPort("[fe80::1]:5"), wantV1: "PROXY TCP6 fe80::1 fe80::2 5 6\r\n"},
		{name: "unknown", src: netip.AddrPort{}, dst: tcp4Dst, wantNoAddrs: true, wantV1: "PROXY UNKNOWN\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantSrc, wantDst := tt.wantSrc, tt.wantDst
			if !wantSrc.IsValid() {
				wantSrc = tt.src
			}
			if !wantDst.IsValid() {
				wantDst = tt.dst
			}
			if tt.wantNoAddrs {
				wantSrc, wantDst = netip.AddrPort{}, netip.AddrPort{}
			}
			v1 := AppendV1(nil, tt.src, tt.dst)
			if string(v1) != tt.wantV1 {
				t.Errorf("AppendV1: got %q, want %q", v1, tt.wantV1)
			}
			if len(v1) > MaxV1Len {
				t.Errorf("AppendV1: got %d bytes, want at most %d", len(v1), MaxV1Len)
			}
			for _, enc := range []struct {
				name string
				b    []byte
			}{{"v1", v1}, {"v2", AppendV2(nil, tt.src, tt.dst)}} {
				if len(enc.b) > MaxV2Len && enc.name == "v2" {
					t.Errorf("AppendV2: got %d bytes, want at most %d", len(enc.b), MaxV2Len)
				}
				h, err := ReadHeader(bytes.NewReader(enc.b))
				if err != nil {
					t.Fatalf("%s: ReadHeader(%q): %v", enc.name, enc.b, err)
				}
				if h.Source != wantSrc || h.Dest != wantDst {
					t.Errorf("%s: got %v → %v, want %v → %v", enc.name, h.Source, h.Dest, wantSrc, wantDst)
				}
				if h.HasAddrs() == tt.wantNoAddrs {
					t.Errorf("%s: HasAddrs: got %v, want %v", enc.name, h.HasAddrs(), !tt.wantNoAddrs)
				}
			}
		})
	}
}

func TestAppendV2LocalForHealthChecks(t *testing.T) {
	t.Parallel()
	h, err := ReadHeader(bytes.NewReader(AppendV2(nil, netip.AddrPort{}, netip.AddrPort{})))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Header{Version: 2, Command: CommandLocal}); h != want {
		t.Errorf("got %+v, want %+v", h, want)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	src := netip.MustParseAddrPort("[2001:db8::1]:65535")
	dst := netip.MustParseAddrPort("[2001:db8::ff]:80")
	buf := make([]byte, 0, MaxV1Len)
	for name, f := range map[string]func([]byte, netip.AddrPort, netip.AddrPort) []byte{"v1": AppendV1, "v2": AppendV2} {
		if n := testing.AllocsPerRun(100, func() { buf = f(buf[:0], src, dst) }); n != 0 {
			t.Errorf("%s: got %v allocations, want 0", name, n)
		}
	}
}

func BenchmarkReadHeader(b *testing.B) {
	for _, name := range []string{"v1-tcp4.bin", "v2-tcp4.bin", "v2-tcp6.bin"} {
		data, err := os.ReadFile(filepath.Join("testdata", "headers", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(name, ".bin"), func(b *testing.B) {
			b.ReportAllocs()
			r := bytes.NewReader(data)
			for b.Loop() {
				r.Reset(data)
				if _, err := ReadHeader(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendV2(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, MaxV2Len)
	for b.Loop() {
		buf = AppendV2(buf[:0], tcp4Src, tcp4Dst)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "headers", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingReader counts the bytes handed out, to prove nothing past the
// header was consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
