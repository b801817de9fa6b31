package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/netip"
	"testing"
)

// The typical request of the fast path: a browser GET with 13 fields.
func BenchmarkParseRequest(b *testing.B) {
	buf := []byte(browserGET)
	var r Request
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// wrk's request: the benchmark tool's own GET.
func BenchmarkParseRequestMinimal(b *testing.B) {
	buf := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
	var r Request
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetHTTPReadRequest is the baseline the codec replaces.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	buf := []byte(browserGET)
	rd := bytes.NewReader(buf)
	br := bufio.NewReader(rd)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(buf)
		br.Reset(rd)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	buf := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.26.0\r\nDate: Tue, 01 Jul 2025 10:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 612\r\nLast-Modified: Tue, 23 Apr 2024 14:04:32 GMT\r\nConnection: keep-alive\r\nETag: \"6627bf50-264\"\r\nAccept-Ranges: bytes\r\n\r\n")
	method := []byte("GET")
	var r Response
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(buf, &r, Limits{}, method); err != nil {
			b.Fatal(err)
		}
	}
}

// Parse plus re-encode for the backend, with X-Forwarded-*: the whole head
// work of the fast path.
func BenchmarkForwardRequestHead(b *testing.B) {
	buf := []byte(browserGET)
	var r Request
	f := &Forwarding{Client: netip.MustParseAddr("192.0.2.7"), XForwarded: true}
	dst := make([]byte, 0, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			b.Fatal(err)
		}
		dst = AppendRequestHead(dst[:0], &r, f, ConnDefault)
	}
}

func BenchmarkChunkedReader(b *testing.B) {
	var body []byte
	chunk := bytes.Repeat([]byte("x"), 8192)
	for range 16 {
		body = AppendChunk(body, chunk)
	}
	body = append(body, "0\r\n\r\n"...)
	rd := bytes.NewReader(body)
	br := bufio.NewReaderSize(rd, 32<<10)
	cr := NewChunkedReader(br, Limits{})
	p := make([]byte, 32<<10)
	b.SetBytes(int64(16 * len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		br.Reset(rd)
		cr.Reset(br, Limits{})
		for {
			if _, err := cr.Read(p); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
