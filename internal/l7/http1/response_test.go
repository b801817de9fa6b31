package http1

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type respSummary struct {
	Version       Version
	Status        int
	Reason        string
	ContentLength int64
	Chunked       bool
	Body          BodyKind
	Close         bool
	KeepAlive     bool
	Tunnel        bool
	Upgrade       string
	Fields        int
}

func summarizeResponse(r *Response) respSummary {
	return respSummary{
		Version: r.Version, Status: r.Status, Reason: string(r.Reason), ContentLength: r.ContentLength,
		Chunked: r.Chunked, Body: r.Body, Close: r.Close, KeepAlive: r.KeepAlive, Tunnel: r.Tunnel,
		Upgrade: string(r.Upgrade), Fields: r.nf,
	}
}

type responseCase struct {
	name   string
	method string // of the request answered
	msg    string
	status int // 0: accepted, else 502
	code   code
	want   respSummary
}

var responseCases = []responseCase{
	{name: "content-length", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: 5, Body: BodyLength, Fields: 2}},
	{name: "content-length-zero", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: 0, Body: BodyLength, Fields: 1}},
	{name: "chunked", method: "GET", msg: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: -1, Chunked: true, Body: BodyChunked, Fields: 1}},
	{name: "until-close", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: -1, Body: BodyUntilClose, Close: true, Fields: 1}},
	{name: "http10-until-close", method: "GET", msg: "HTTP/1.0 200 OK\r\n\r\nbody", want: respSummary{
		Version: HTTP10, Status: 200, Reason: "OK", ContentLength: -1, Body: BodyUntilClose, Close: true}},
	{name: "http10-keep-alive", method: "GET", msg: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", want: respSummary{
		Version: HTTP10, Status: 200, Reason: "OK", ContentLength: 2, Body: BodyLength, KeepAlive: true, Fields: 2}},
	{name: "connection-close", method: "GET", msg: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: 2, Body: BodyLength, Close: true, Fields: 2}},
	{name: "head-with-content-length", method: "HEAD", msg: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: 1234, Body: BodyNone, Fields: 1}},
	{name: "head-with-chunked", method: "HEAD", msg: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: -1, Chunked: true, Body: BodyNone, Fields: 1}},
	{name: "no-content", method: "DELETE", msg: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 204, Reason: "No Content", ContentLength: 0, Body: BodyNone, Fields: 1}},
	{name: "not-modified", method: "GET", msg: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 304, Reason: "Not Modified", ContentLength: 99, Body: BodyNone, Fields: 2}},
	{name: "continue", method: "POST", msg: "HTTP/1.1 100 Continue\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 100, Reason: "Continue", ContentLength: -1, Body: BodyNone}},
	{name: "early-hints", method: "GET", msg: "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 103, Reason: "Early Hints", ContentLength: -1, Body: BodyNone, Fields: 1}},
	{name: "switching-protocols", method: "GET", msg: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 101, Reason: "Switching Protocols", ContentLength: -1, Body: BodyNone, Tunnel: true, Upgrade: "websocket", Fields: 3}},
	{name: "connect-established", method: "CONNECT", msg: "HTTP/1.1 200 Connection Established\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "Connection Established", ContentLength: -1, Body: BodyNone, Tunnel: true}},
	{name: "connect-refused", method: "CONNECT", msg: "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 403, Reason: "Forbidden", ContentLength: 0, Body: BodyLength, Fields: 1}},
	{name: "no-reason", method: "GET", msg: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, ContentLength: 0, Body: BodyLength, Fields: 1}},
	{name: "empty-reason", method: "GET", msg: "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, ContentLength: 0, Body: BodyLength, Fields: 1}},
	{name: "reason-obs-text", method: "GET", msg: "HTTP/1.1 404 Non trouv\xe9\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 404, Reason: "Non trouv\xe9", ContentLength: 0, Body: BodyLength, Fields: 1}},
	{name: "keep-alive-field", method: "GET", msg: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", want: respSummary{
		Version: HTTP11, Status: 200, Reason: "OK", ContentLength: 0, Body: BodyLength, KeepAlive: true, Fields: 3}},

	{name: "cl-te", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502, code: codeCLWithTE},
	{name: "cl-te-on-204", method: "GET", msg: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 502, code: codeCLWithTE},
	{name: "cl-conflicting", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello", status: 502, code: codeConflictingContentLength},
	{name: "cl-bad", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello", status: 502, code: codeBadContentLength},
	{name: "cl-bad-on-head", method: "HEAD", msg: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", status: 502, code: codeBadContentLength},
	{name: "te-gzip", method: "GET", msg: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", status: 502, code: codeTENotChunked},
	{name: "te-http10", method: "GET", msg: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502, code: codeTEInHTTP10},
	{name: "obs-fold", method: "GET", msg: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", status: 502, code: codeObsFold},
	{name: "space-before-colon", method: "GET", msg: "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", status: 502, code: codeSpaceBeforeColon},
	{name: "bare-lf", method: "GET", msg: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", status: 502, code: codeBareLF},
	{name: "value-nul", method: "GET", msg: "HTTP/1.1 200 OK\r\nSet-Cookie: a=\x00\r\n\r\n", status: 502, code: codeBadFieldValue},
	{name: "status-two-digits", method: "GET", msg: "HTTP/1.1 20 OK\r\n\r\n", status: 502, code: codeBadStatus},
	{name: "status-four-digits", method: "GET", msg: "HTTP/1.1 2000 OK\r\n\r\n", status: 502, code: codeBadStatusLine},
	{name: "status-below-100", method: "GET", msg: "HTTP/1.1 099 Odd\r\n\r\n", status: 502, code: codeBadStatus},
	{name: "status-above-599", method: "GET", msg: "HTTP/1.1 600 Odd\r\n\r\n", status: 502, code: codeBadStatus},
	{name: "status-letters", method: "GET", msg: "HTTP/1.1 2OO OK\r\n\r\n", status: 502, code: codeBadStatus},
	{name: "status-line-double-space", method: "GET", msg: "HTTP/1.1  200 OK\r\n\r\n", status: 502, code: codeBadStatus},
	{name: "version-lowercase", method: "GET", msg: "http/1.1 200 OK\r\n\r\n", status: 502, code: codeBadStatusLine},
	{name: "version-2.0", method: "GET", msg: "HTTP/2.0 200 OK\r\n\r\n", status: 502, code: codeUnsupportedVersion},
	{name: "reason-ctl", method: "GET", msg: "HTTP/1.1 200 O\x01K\r\n\r\n", status: 502, code: codeBadStatusLine},
	{name: "switching-without-upgrade", method: "GET", msg: "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n", status: 502, code: codeBadUpgrade},
	{name: "not-http", method: "GET", msg: "SSH-2.0-OpenSSH_9.6\r\n", status: 502, code: codeBadStatusLine},
	{name: "not-http-incomplete", method: "GET", msg: "<html>", status: 502, code: codeBadStatusLine},
	{name: "status-line-too-long", method: "GET", msg: "HTTP/1.1 200 " + strings.Repeat("a", DefaultMaxLine) + "\r\n\r\n", status: 502, code: codeLineTooLong},
	{name: "too-many-fields", method: "GET", msg: "HTTP/1.1 200 OK\r\n" + strings.Repeat("Set-Cookie: a=b\r\n", MaxFields+1) + "\r\n", status: 502, code: codeTooManyFields},
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range responseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r Response
			n, err := ParseResponse([]byte(tc.msg), &r, Limits{}, []byte(tc.method))
			if tc.status != 0 {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("got n=%d err=%v, want an *Error", n, err)
				}
				if e.Status != tc.status || e.code != tc.code {
					t.Fatalf("got %d %q, want %d %q", e.Status, e, tc.status, responseErrors[tc.code].text)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want success", err)
			}
			if want := strings.Index(tc.msg, "\r\n\r\n") + 4; n != want {
				t.Errorf("got n=%d, want %d", n, want)
			}
			if diff := cmp.Diff(tc.want, summarizeResponse(&r)); diff != "" {
				t.Errorf("response mismatch (-want +got):\n%s", diff)
			}
			head := tc.msg[:n]
			for i := range len(head) {
				if _, err := ParseResponse([]byte(head[:i]), &r, Limits{}, []byte(tc.method)); err != ErrIncomplete {
					t.Fatalf("prefix of %d bytes: got %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

// TestResponseCorpus keeps testdata/responses in step with responseCases;
// the request method is part of the file name.
func TestResponseCorpus(t *testing.T) {
	var files []corpusFile
	for _, tc := range responseCases {
		files = append(files, corpusFile{outcome(tc.status) + "_" + tc.method + "_" + tc.name + ".http", []byte(tc.msg)})
	}
	syncCorpus(t, "testdata/responses", files)
}

// TestParseResponseInterim parses a 100 Continue and the final response
// after it from one buffer, as a proxy does.
func TestParseResponseInterim(t *testing.T) {
	t.Parallel()
	buf := []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
	var r Response
	n, err := ParseResponse(buf, &r, Limits{}, []byte("PUT"))
	if err != nil || r.Status != 100 {
		t.Fatalf("got %d, %v, want the 100", r.Status, err)
	}
	m, err := ParseResponse(buf[n:], &r, Limits{}, []byte("PUT"))
	if err != nil || r.Status != 201 || r.Body != BodyLength || string(buf[n+m:]) != "ok" {
		t.Fatalf("got %d %v %v body %q, want 201 with a 2-byte body", r.Status, r.Body, err, buf[n+m:])
	}
}

func TestParseResponseZeroAllocs(t *testing.T) {
	buf := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Jul 2025 10:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 612\r\nConnection: keep-alive\r\nETag: \"5d1-3b\"\r\nAccept-Ranges: bytes\r\n\r\n")
	method := []byte("GET")
	var r Response
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseResponse(buf, &r, Limits{}, method); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per ParseResponse, want 0", allocs)
	}
}
