package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type chunkedCase struct {
	name     string
	body     string
	status   int  // 0: decodes; 400: an *Error (of code's status); -1: io.ErrUnexpectedEOF
	code     code // for status 400
	data     string
	trailers []string // "Name: value"
}

var chunkedCases = []chunkedCase{
	{name: "empty", body: "0\r\n\r\n"},
	{name: "one-chunk", body: "5\r\nhello\r\n0\r\n\r\n", data: "hello"},
	{name: "chunks", body: "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", data: "hello world"},
	{name: "upper-hex", body: "A\r\n0123456789\r\n0\r\n\r\n", data: "0123456789"},
	{name: "leading-zeros", body: "0005\r\nhello\r\n000\r\n\r\n", data: "hello"},
	{name: "sixteen-digits", body: "0000000000000005\r\nhello\r\n0\r\n\r\n", data: "hello"},
	{name: "data-with-crlf", body: "4\r\n\r\n\r\n\r\n0\r\n\r\n", data: "\r\n\r\n"},
	{name: "extension", body: "5;name=value\r\nhello\r\n0;last\r\n\r\n", data: "hello"},
	{name: "extensions-bws", body: "5; a = b ;c;d=\"q \\\" x\"\r\nhello\r\n0\r\n\r\n", data: "hello"},
	{name: "trailers", body: "3\r\nabc\r\n0\r\nChecksum: 900150983cd24fb0\r\nX-Done:  yes \r\n\r\n", data: "abc",
		trailers: []string{"Checksum: 900150983cd24fb0", "X-Done: yes"}},

	{name: "size-missing", body: "\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-space-after", body: "5 \r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-space-before", body: " 5\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-tab-before-ext", body: "5\t;a\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-plus", body: "+5\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-negative", body: "-1\r\nx\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-0x", body: "0x5\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-junk", body: "5g\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "size-seventeen-digits", body: "00000000000000005\r\nhello\r\n0\r\n\r\n", status: 400, code: codeChunkSizeOverflow},
	{name: "size-overflow", body: "8000000000000000\r\nx\r\n0\r\n\r\n", status: 400, code: codeChunkSizeOverflow},
	{name: "size-bare-lf", body: "5\nhello\r\n0\r\n\r\n", status: 400, code: codeBareLF},
	{name: "size-bare-cr", body: "5\r\rhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkSize},
	{name: "last-bare-lf", body: "5\r\nhello\r\n0\n\r\n", status: 400, code: codeBareLF},
	{name: "end-bare-lf", body: "5\r\nhello\r\n0\r\n\n", status: 400, code: codeBareLF},
	{name: "data-longer-than-size", body: "3\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkEnd},
	{name: "data-bare-lf", body: "5\r\nhello\n0\r\n\r\n", status: 400, code: codeBadChunkEnd},
	{name: "data-no-crlf", body: "5\r\nhello0\r\n\r\n", status: 400, code: codeBadChunkEnd},
	{name: "ext-empty", body: "5;\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "ext-trailing-space", body: "5;a \r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "ext-ctl", body: "5;a=\x01\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "ext-unterminated-quote", body: "5;a=\"x\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "ext-hides-size", body: "5;a=b 10\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "ext-bare-cr", body: "5;a\rb\r\nhello\r\n0\r\n\r\n", status: 400, code: codeBadChunkExt},
	{name: "line-too-long", body: "5;a=" + strings.Repeat("x", 4096) + "\r\nhello\r\n0\r\n\r\n", status: 400, code: codeChunkLineTooLong},
	{name: "overhead", body: strings.Repeat("1;"+strings.Repeat("x", 1000)+"\r\nx\r\n", 20) + "0\r\n\r\n", status: 400, code: codeChunkOverhead},
	{name: "trailer-content-length", body: "0\r\nContent-Length: 5\r\n\r\n", status: 400, code: codeBadTrailerField},
	{name: "trailer-transfer-encoding", body: "0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400, code: codeBadTrailerField},
	{name: "trailer-host", body: "0\r\nHost: evil\r\n\r\n", status: 400, code: codeBadTrailerField},
	{name: "trailer-obs-fold", body: "0\r\nX-A: 1\r\n 2\r\n\r\n", status: 400, code: codeObsFold},
	{name: "trailer-space-before-colon", body: "0\r\nX-A : 1\r\n\r\n", status: 400, code: codeSpaceBeforeColon},
	{name: "trailer-bare-lf", body: "0\r\nX-A: 1\n\r\n", status: 400, code: codeBareLF},
	{name: "trailer-too-large", body: "0\r\nX-A: " + strings.Repeat("x", 4096) + "\r\n\r\n", status: 400, code: codeHeadTooLarge},
	{name: "trailer-too-many", body: "0\r\n" + strings.Repeat("X-A: 1\r\n", MaxFields+1) + "\r\n", status: 400, code: codeTooManyFields},
	{name: "truncated-size", body: "5", status: -1},
	{name: "truncated-data", body: "5\r\nhel", status: -1},
	{name: "truncated-data-crlf", body: "5\r\nhello\r", status: -1},
	{name: "truncated-trailers", body: "5\r\nhello\r\n0\r\n", status: -1},
}

// decodeChunked reads body through a ChunkedReader with reads of at most
// step bytes and returns the data, the trailers, what is left in the
// reader and the error.
func decodeChunked(body []byte, step int) (data []byte, trailers []string, rest []byte, err error) {
	br := bufio.NewReader(bytes.NewReader(body))
	cr := NewChunkedReader(br, Limits{})
	p := make([]byte, step)
	for {
		n, rerr := cr.Read(p)
		data = append(data, p[:n]...)
		if rerr != nil {
			if rerr != io.EOF {
				return data, nil, nil, rerr
			}
			break
		}
	}
	for _, f := range cr.Trailers() {
		trailers = append(trailers, string(f.Name)+": "+string(f.Value))
	}
	rest, _ = io.ReadAll(br)
	return data, trailers, rest, nil
}

func TestChunkedReader(t *testing.T) {
	t.Parallel()
	for _, tc := range chunkedCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, step := range []int{1, 3, 4096} {
				data, trailers, rest, err := decodeChunked([]byte(tc.body+"NEXT"), step)
				if tc.status == -1 {
					// Without the "NEXT" that makes the truncation visible.
					data, trailers, rest, err = decodeChunked([]byte(tc.body), step)
				}
				switch tc.status {
				case 0:
					if err != nil {
						t.Fatalf("step %d: got error %v, want success", step, err)
					}
					if string(data) != tc.data {
						t.Errorf("step %d: got data %q, want %q", step, data, tc.data)
					}
					if diff := cmp.Diff(tc.trailers, trailers); diff != "" {
						t.Errorf("step %d: trailers (-want +got):\n%s", step, diff)
					}
					if string(rest) != "NEXT" {
						t.Errorf("step %d: got %q left after the body, want NEXT", step, rest)
					}
				case -1:
					if err != io.ErrUnexpectedEOF {
						t.Fatalf("step %d: got error %v, want io.ErrUnexpectedEOF", step, err)
					}
				default:
					var e *Error
					if !errors.As(err, &e) || e.code != tc.code || e.Status != codeInfo[tc.code].status {
						t.Fatalf("step %d: got error %v, want %q", step, err, requestErrors[tc.code].text)
					}
				}
			}
		})
	}
}

// TestChunkedCorpus keeps testdata/chunked in step with chunkedCases.
func TestChunkedCorpus(t *testing.T) {
	var files []corpusFile
	for _, tc := range chunkedCases {
		o := outcome(tc.status)
		if tc.status == -1 {
			o = "400"
		}
		files = append(files, corpusFile{o + "_" + tc.name + ".txt", []byte(tc.body)})
	}
	syncCorpus(t, "testdata/chunked", files)
}

// TestChunkedReaderDoesNotBlock checks that data is returned as soon as it
// arrives, without waiting for the next chunk: a proxy relaying a stream
// (server-sent events, a long poll) must not hold bytes back.
func TestChunkedReaderDoesNotBlock(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	cr := NewChunkedReader(bufio.NewReader(pr), Limits{})
	got := make(chan string)
	go func() {
		p := make([]byte, 64)
		for {
			n, err := cr.Read(p)
			if n > 0 {
				got <- string(p[:n])
			}
			if err != nil {
				got <- "err: " + err.Error()
				close(got)
				return
			}
		}
	}()
	for _, part := range []string{"hello", "world"} {
		if _, err := pw.Write(AppendChunk(nil, []byte(part))); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != part {
				t.Fatalf("got %q, want %q", s, part)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("chunk %q not delivered before the next one was sent", part)
		}
	}
	pw.Write([]byte("0\r\n\r\n"))
	if s := <-got; s != "err: EOF" {
		t.Fatalf("got %q, want EOF", s)
	}
}

func TestChunkedWriterRoundTrip(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	cw := NewChunkedWriter(bw)
	parts := []string{"a", "", strings.Repeat("b", 4097), "c\r\n0\r\n\r\n"}
	for _, p := range parts {
		if n, err := cw.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%d bytes): got %d, %v", len(p), n, err)
		}
	}
	trailers := []Field{
		{Name: []byte("Checksum"), Value: []byte("abc")},
		{Name: []byte("Content-Length"), Value: []byte("5")},
		{Name: []byte("Connection"), Value: []byte("close")},
		{Name: []byte("X-Done"), Value: []byte("1")},
	}
	if err := cw.CloseWithTrailers(trailers); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	data, gotTrailers, rest, err := decodeChunked(out.Bytes(), 4096)
	if err != nil {
		t.Fatalf("decoding %q: %v", out.Bytes(), err)
	}
	if want := strings.Join(parts, ""); string(data) != want {
		t.Errorf("got %d bytes back, want %d", len(data), len(want))
	}
	if diff := cmp.Diff([]string{"Checksum: abc", "X-Done: 1"}, gotTrailers); diff != "" {
		t.Errorf("trailers (-want +got):\n%s", diff)
	}
	if len(rest) != 0 {
		t.Errorf("got %q after the body, want nothing", rest)
	}
	if got := string(AppendChunk(nil, nil)); got != "" {
		t.Errorf("AppendChunk of nothing: got %q, want nothing (an empty chunk ends the body)", got)
	}
	if got := string(AppendChunkHeader(nil, 0x1f2e)); got != "1f2e\r\n" {
		t.Errorf("got %q, want 1f2e CRLF", got)
	}
}

func TestChunkedZeroAllocs(t *testing.T) {
	var body []byte
	for range 10 {
		body = AppendChunk(body, bytes.Repeat([]byte("x"), 1000))
	}
	body = append(body, "0\r\nX-Sum: 1\r\n\r\n"...)
	rd := bytes.NewReader(body)
	br := bufio.NewReader(rd)
	cr := NewChunkedReader(br, Limits{})
	p := make([]byte, 512)
	read := func() {
		rd.Reset(body)
		br.Reset(rd)
		cr.Reset(br, Limits{})
		for {
			_, err := cr.Read(p)
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	read() // sizes the trailer buffers once
	if allocs := testing.AllocsPerRun(100, read); allocs != 0 {
		t.Errorf("got %v allocations per chunked body, want 0", allocs)
	}

	cw := NewChunkedWriter(io.Discard)
	chunk := []byte("0123456789")
	trailers := []Field{{Name: []byte("X-Sum"), Value: []byte("1")}}
	if allocs := testing.AllocsPerRun(100, func() {
		cw.Reset(io.Discard)
		cw.Write(chunk)
		cw.CloseWithTrailers(trailers)
	}); allocs != 0 {
		t.Errorf("got %v allocations per ChunkedWriter body, want 0", allocs)
	}
}

// pieces hands out one piece per Read, as a backend's writes arrive, and
// counts the Reads.
type pieces struct {
	p     []string
	reads int
}

func (r *pieces) Read(b []byte) (int, error) {
	r.reads++
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p[0])
	r.p[0] = r.p[0][n:]
	if r.p[0] == "" {
		r.p = r.p[1:]
	}
	return n, nil
}

// TestChunkedReaderReady: when Ready says true, Read must not touch the
// connection; when a piece ends a chunk, Ready must say false before the
// Read that waits for the next one (or a proxy would sit on the chunk).
func TestChunkedReaderReady(t *testing.T) {
	src := &pieces{p: []string{"5\r\nhello", "\r\n", "6\r\n world\r\n3\r\n", "abc\r\n", "0\r\n", "\r\n"}}
	br := bufio.NewReaderSize(src, 16)
	cr := NewChunkedReader(br, Limits{})
	var got []byte
	buf := make([]byte, 64)
	for {
		ready := cr.Ready()
		before := src.reads
		n, err := cr.Read(buf)
		if ready && src.reads != before {
			t.Fatalf("Ready said true, then Read read the connection (after %q)", got)
		}
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello worldabc" {
		t.Errorf("got %q", got)
	}
}

func TestChunkedReaderReadyStates(t *testing.T) {
	for _, tc := range []struct {
		buffered string
		want     bool
	}{
		{"", false},
		{"5", false},
		{"5\r\n", false},
		{"5\r\nh", true},
		{"0\r\n", false},
		{"0\r\n\r\n", true},
		{"000;x=1\r\n\r\n", true},
		{"0\r\nX-T: 1\r\n\r\n", false},
		{"10\r\nx", true},
		// Malformed framing already buffered: Read fails without waiting.
		{"zz\r\n", true},
		{"1 \r\n", true},
		{"1\na", true},
		{"\r\n", true},
		{"10000000000000000\r\n", true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.buffered))
		if tc.buffered != "" {
			br.Peek(len(tc.buffered))
		}
		cr := NewChunkedReader(br, Limits{})
		if got := cr.Ready(); got != tc.want {
			t.Errorf("Ready with %q buffered: got %v, want %v", tc.buffered, got, tc.want)
		}
	}
	// After a chunk's data, its CRLF decides.
	for _, tc := range []struct {
		after string
		want  bool
	}{
		{"", false},
		{"\r", false},
		{"bc\r\n0\r\n\r\n", true}, // data longer than its size: fails at once
		{"\r\n0\r\n\r\n", true},
		{"\r\n0\r\n", false},
		{"\r\n5\r\n", false},
		{"\r\n5\r\nab", true},
	} {
		body := "1\r\na" + tc.after
		br := bufio.NewReader(strings.NewReader(body))
		br.Peek(len(body))
		cr := NewChunkedReader(br, Limits{})
		if _, err := cr.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if got := cr.Ready(); got != tc.want {
			t.Errorf("Ready after a chunk's data, with %q buffered: got %v, want %v", tc.after, got, tc.want)
		}
	}
}

// FuzzChunkedReady: whatever the body and however it is split into
// arrivals, Ready never promises a Read that goes to the connection.
func FuzzChunkedReady(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(3), uint8(7))
	f.Add([]byte("1\r\nabc\r\n0\r\n\r\n"), uint8(4), uint8(1))
	f.Add([]byte("3;x=\"y\"\r\nabc\r\n0\r\nT: v\r\n\r\n"), uint8(9), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, cut1, cut2 uint8) {
		a, b := min(int(cut1), len(body)), min(int(cut2), len(body))
		if a > b {
			a, b = b, a
		}
		src := &pieces{p: []string{string(body[:a]), string(body[a:b]), string(body[b:])}}
		cr := NewChunkedReader(bufio.NewReaderSize(src, 16), Limits{})
		buf := make([]byte, 8)
		for range 1000 {
			ready := cr.Ready()
			before := src.reads
			_, err := cr.Read(buf)
			if ready && src.reads != before {
				t.Fatalf("Ready promised a buffered Read, which then read the connection: %q cut at %d, %d", body, a, b)
			}
			if err != nil {
				return
			}
		}
	})
}
