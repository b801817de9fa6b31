package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func seedCorpus(f *testing.F, dir string) []corpusFile {
	return readCorpus(f, filepath.Join("testdata", dir))
}

// checkError checks the contract of a failed parse: ErrIncomplete only while
// the head may still fit, otherwise an *Error with one of the statuses the
// side answers.
func checkError(t *testing.T, data []byte, n int, err error, statuses ...int) {
	t.Helper()
	if n != 0 {
		t.Fatalf("got n=%d with error %v, want 0", n, err)
	}
	if err == ErrIncomplete {
		if len(data) >= DefaultMaxHeaderBytes {
			t.Fatalf("ErrIncomplete for %d bytes, over the head limit: a caller would buffer forever", len(data))
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %T %v, want *Error", err, err)
	}
	for _, s := range statuses {
		if e.Status == s {
			return
		}
	}
	t.Fatalf("got status %d (%v), want one of %v", e.Status, err, statuses)
}

// checkFieldsWithin checks that every field points into the head.
func checkFieldsWithin(t *testing.T, head []byte, fields []Field) {
	t.Helper()
	for _, f := range fields {
		if !within(head, f.Name) || !within(head, f.Value) {
			t.Fatalf("field %q: %q not inside the head", f.Name, f.Value)
		}
		if bytes.ContainsAny(f.Value, "\r\n\x00") || len(f.Name) == 0 {
			t.Fatalf("field %q: %q holds CR, LF or NUL", f.Name, f.Value)
		}
	}
}

// within reports whether inner is a subslice of outer's memory, not merely
// equal to some part of it.
func within(outer, inner []byte) bool {
	if len(inner) == 0 {
		return true
	}
	for i := range outer {
		if &outer[i] == &inner[0] {
			return i+len(inner) <= len(outer)
		}
	}
	return false
}

// FuzzParseRequest checks, for any input: no panic; errors as documented;
// n within the input and ending in CRLF CRLF; an accepted request, written
// for a backend and parsed again, keeps its framing; and net/http accepts
// whatever we accept and reads the same request.
func FuzzParseRequest(f *testing.F) {
	for _, c := range seedCorpus(f, "requests") {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		n, err := ParseRequest(data, &r, Limits{})
		if err != nil {
			checkError(t, data, n, err, 400, 414, 417, 431, 501, 505)
			return
		}
		if n < len("M / HTTP/1.0\r\n\r\n") || n > len(data) || string(data[n-4:n]) != "\r\n\r\n" {
			t.Fatalf("got n=%d for %d bytes, want a head ending in CRLF CRLF", n, len(data))
		}
		checkFieldsWithin(t, data[:n], r.Fields())

		var body []byte
		if r.Chunked {
			cr := NewChunkedReader(bufio.NewReader(bytes.NewReader(data[n:])), Limits{})
			if body, err = io.ReadAll(cr); err != nil {
				return // the whole message is rejected
			}
		}
		if err := netHTTPAgrees(data, &r, body); err != nil {
			t.Fatal(err)
		}

		if r.nf == MaxFields {
			return // the writer may add Host to a full HTTP/1.0 head
		}
		head := AppendRequestHead(nil, &r, nil, ConnDefault)
		var again Request
		m, err := ParseRequest(head, &again, Limits{MaxLine: 1 << 20, MaxHeaderBytes: 1 << 20})
		if err != nil || m != len(head) {
			t.Fatalf("re-parsing %q: n=%d err=%v", head, m, err)
		}
		got, want := framingOf(&again), framingOf(&r)
		if got != want {
			t.Fatalf("re-parsed framing %+v, want %+v (head %q)", got, want, head)
		}
	})
}

type reqFraming struct {
	Method, Host, Path, Upgrade string
	ContentLength               int64
	Chunked, Expect100          bool
}

func framingOf(r *Request) reqFraming {
	return reqFraming{
		Method: string(r.Method), Host: string(r.Host), Path: string(r.Path()), Upgrade: string(r.Upgrade),
		ContentLength: r.ContentLength, Chunked: r.Chunked, Expect100: r.Expect100,
	}
}

// FuzzParseResponse checks the response parser as FuzzParseRequest does the
// request parser, and that a forwarded head keeps status and framing.
func FuzzParseResponse(f *testing.F) {
	for _, c := range seedCorpus(f, "responses") {
		parts := strings.SplitN(c.name, "_", 3)
		f.Add(c.data, parts[1])
	}
	f.Fuzz(func(t *testing.T, data []byte, method string) {
		var r Response
		n, err := ParseResponse(data, &r, Limits{}, []byte(method))
		if err != nil {
			checkError(t, data, n, err, 502)
			return
		}
		if n > len(data) || string(data[n-4:n]) != "\r\n\r\n" {
			t.Fatalf("got n=%d for %d bytes, want a head ending in CRLF CRLF", n, len(data))
		}
		checkFieldsWithin(t, data[:n], r.Fields())
		if r.Body == BodyLength && r.ContentLength < 0 || r.Body == BodyChunked && !r.Chunked {
			t.Fatalf("body %v with length %d, chunked %v", r.Body, r.ContentLength, r.Chunked)
		}

		if r.nf == MaxFields {
			return // the writer may add Connection: close to a full head
		}
		head := AppendResponseHead(nil, &r, ConnDefault)
		var again Response
		m, err := ParseResponse(head, &again, Limits{MaxLine: 1 << 20, MaxHeaderBytes: 1 << 20}, []byte(method))
		if err != nil || m != len(head) {
			t.Fatalf("re-parsing %q: n=%d err=%v", head, m, err)
		}
		type framing struct {
			Status  int
			Body    BodyKind
			Tunnel  bool
			Upgrade string
		}
		got := framing{again.Status, again.Body, again.Tunnel, string(again.Upgrade)}
		want := framing{r.Status, r.Body, r.Tunnel, string(r.Upgrade)}
		if got != want {
			t.Fatalf("re-parsed %+v, want %+v (head %q)", got, want, head)
		}
		if r.Body == BodyLength && again.ContentLength != r.ContentLength {
			t.Fatalf("re-parsed length %d, want %d", again.ContentLength, r.ContentLength)
		}
	})
}

const chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

// FuzzChunked checks, for any body: no panic; errors as documented; a body
// we decode is one net/http decodes to the same bytes; and re-encoding what
// we decoded gives it back, trailers included.
func FuzzChunked(f *testing.F) {
	for _, c := range seedCorpus(f, "chunked") {
		f.Add(c.data, uint16(4096))
		f.Add(c.data, uint16(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, step uint16) {
		data, trailers, rest, err := decodeChunked(body, max(int(step), 1))
		if err != nil {
			var e *Error
			if err != io.ErrUnexpectedEOF && !errors.As(err, &e) {
				t.Fatalf("got error %T %v, want io.ErrUnexpectedEOF or *Error", err, err)
			}
			return
		}
		if !bytes.HasSuffix(body, rest) {
			t.Fatalf("rest %q is not the end of the body", rest)
		}

		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(append([]byte(chunkedHead), body...))))
		if err != nil {
			t.Fatal(err)
		}
		goData, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("net/http rejects a body we accept: %v", err)
		}
		if !bytes.Equal(goData, data) {
			t.Fatalf("got %q, net/http %q", data, goData)
		}

		var fields []Field
		for _, tr := range trailers {
			name, value, _ := strings.Cut(tr, ": ")
			fields = append(fields, Field{Name: []byte(name), Value: []byte(value)})
		}
		var enc []byte
		for i := 0; i < len(data); i += 7 {
			enc = AppendChunk(enc, data[i:min(i+7, len(data))])
		}
		enc = AppendLastChunk(enc, fields)
		data2, trailers2, rest2, err := decodeChunked(enc, 4096)
		if err != nil || !bytes.Equal(data2, data) || len(rest2) != 0 || strings.Join(trailers2, "\n") != strings.Join(trailers, "\n") {
			t.Fatalf("re-encoded %q: got %q %q rest %q err %v", enc, data2, trailers2, rest2, err)
		}
	})
}

// FuzzValidIPv6 holds validIPv6 to netip.ParseAddr's verdict on IPv6
// literals without a zone, which net/http applies to a target's host.
func FuzzValidIPv6(f *testing.F) {
	for _, s := range []string{"::", "::1", "1::", "2001:db8::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:192.0.2.1",
		"1:2:3:4:5:6:1.2.3.4", "000:0", "1:2:3:4:5:6:7:8:9", ":::", "1::2::3", "::01.2.3.4", "::1.2.3.256", "12345::", "1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "%") {
			return // zones are refused before this check
		}
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is6()
		if got := validIPv6([]byte(s)); got != want {
			t.Fatalf("validIPv6(%q) = %v, netip.ParseAddr says %v (%v)", s, got, want, err)
		}
	})
}
