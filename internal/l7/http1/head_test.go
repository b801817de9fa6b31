package http1

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustParseRequest(t testing.TB, msg string) *Request {
	t.Helper()
	r := new(Request)
	if _, err := ParseRequest([]byte(msg), r, Limits{}); err != nil {
		t.Fatalf("parse %q: %v", msg, err)
	}
	return r
}

func mustParseResponse(t testing.TB, msg, method string) *Response {
	t.Helper()
	r := new(Response)
	if _, err := ParseResponse([]byte(msg), r, Limits{}, []byte(method)); err != nil {
		t.Fatalf("parse %q: %v", msg, err)
	}
	return r
}

// lines splits a head for readable diffs.
func lines(head []byte) []string { return strings.Split(string(head), "\r\n") }

func TestAppendRequestHead(t *testing.T) {
	t.Parallel()
	v4 := netip.MustParseAddr("192.0.2.7")
	all := &Forwarding{Client: v4, XForwarded: true, Forwarded: true, RealIP: true}
	tests := []struct {
		name string
		msg  string
		f    *Forwarding
		conn Conn
		want string
	}{
		{
			name: "plain",
			msg:  "GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
			want: "GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
		},
		{
			name: "hop-by-hop-removed",
			msg: "POST /x HTTP/1.1\r\nAccept: */*\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\nX-Hop: secret\r\nTE: gzip\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n" +
				"Host: a\r\nTransfer-Encoding: chunked\r\nX-End: 1\r\n\r\n",
			want: "POST /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-End: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		},
		{
			name: "connection-cannot-strip-framing-or-host",
			msg:  "POST /x HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host\r\nContent-Length: 2\r\n\r\nhi",
			want: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n",
		},
		{
			name: "duplicate-content-length-merged",
			msg:  "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
			want: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n",
		},
		{
			name: "http10-becomes-http11",
			msg:  "GET /x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
			want: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
		},
		{
			name: "absolute-form-to-origin-form",
			msg:  "GET http://a:8080?q HTTP/1.1\r\nHost: a:8080\r\n\r\n",
			want: "GET /?q HTTP/1.1\r\nHost: a:8080\r\n\r\n",
		},
		{
			name: "absolute-form-without-host-field",
			msg:  "GET http://a/p HTTP/1.0\r\n\r\n",
			want: "GET /p HTTP/1.1\r\nHost: a\r\n\r\n",
		},
		{
			name: "options-absolute-form-to-asterisk",
			msg:  "OPTIONS http://a HTTP/1.1\r\nHost: a\r\n\r\n",
			want: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		},
		{
			name: "expect-canonical",
			msg:  "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 9\r\n\r\n",
			want: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
		},
		{
			// Forwarded as HTTP/1.1, it would make the backend wait for a
			// 100 Continue the HTTP/1.0 client never asked for.
			name: "expect-dropped-for-http10",
			msg:  "PUT /x HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n",
			want: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n",
		},
		{
			name: "upgrade-kept",
			msg:  "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
			want: "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Version: 13\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
		},
		{
			name: "te-trailers-kept",
			msg:  "POST /grpc HTTP/1.1\r\nHost: a\r\nTE: trailers, deflate\r\nConnection: TE\r\nContent-Length: 0\r\n\r\n",
			conn: ConnClose,
			want: "POST /grpc HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close, te\r\nTE: trailers\r\n\r\n",
		},
		{
			name: "forwarding-appends-and-replaces",
			msg: "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 198.51.100.2, 10.0.0.1\r\n" +
				"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=203.0.113.1\r\nX-Real-IP: 127.0.0.1\r\n\r\n",
			f: all,
			want: "GET / HTTP/1.1\r\nHost: www.example.com\r\n" +
				"X-Forwarded-For: 203.0.113.1, 198.51.100.2, 10.0.0.1, 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: www.example.com\r\n" +
				"Forwarded: for=203.0.113.1, for=192.0.2.7;host=www.example.com;proto=http\r\nX-Real-IP: 192.0.2.7\r\n\r\n",
		},
		{
			name: "forwarding-off-passes-client-fields",
			msg:  "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.1\r\nX-Real-IP: 127.0.0.1\r\n\r\n",
			f:    &Forwarding{Client: v4},
			want: "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.1\r\nX-Real-IP: 127.0.0.1\r\n\r\n",
		},
		{
			name: "forwarding-ipv6-tls-port",
			msg:  "GET / HTTP/1.1\r\nHost: [2001:db8::5]:8443\r\n\r\n",
			f:    &Forwarding{Client: netip.MustParseAddr("2001:db8::1"), TLS: true, XForwarded: true, Forwarded: true, RealIP: true},
			want: "GET / HTTP/1.1\r\nHost: [2001:db8::5]:8443\r\n" +
				"X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: [2001:db8::5]:8443\r\n" +
				"Forwarded: for=\"[2001:db8::1]\";host=\"[2001:db8::5]:8443\";proto=https\r\nX-Real-IP: 2001:db8::1\r\n\r\n",
		},
		{
			name: "forwarding-ipv4-mapped",
			msg:  "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			f:    &Forwarding{Client: netip.MustParseAddr("::ffff:192.0.2.9"), Forwarded: true, RealIP: true},
			want: "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=192.0.2.9;host=a;proto=http\r\nX-Real-IP: 192.0.2.9\r\n\r\n",
		},
		{
			name: "forwarding-unknown-client",
			msg:  "GET / HTTP/1.0\r\n\r\n",
			f:    &Forwarding{XForwarded: true, Forwarded: true, RealIP: true},
			conn: ConnKeepAlive,
			want: "GET / HTTP/1.1\r\nHost: \r\nConnection: keep-alive\r\n" +
				"X-Forwarded-For: unknown\r\nX-Forwarded-Proto: http\r\nForwarded: for=unknown;proto=http\r\n\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := mustParseRequest(t, tc.msg)
			got := AppendRequestHead([]byte("prefix"), r, tc.f, tc.conn)
			if !strings.HasPrefix(string(got), "prefix") {
				t.Fatalf("dst not appended to: %q", got)
			}
			if diff := cmp.Diff(lines([]byte(tc.want)), lines(got[len("prefix"):])); diff != "" {
				t.Errorf("head (-want +got):\n%s", diff)
			}
			// What we forward must pass our own parser.
			var again Request
			if _, err := ParseRequest(got[len("prefix"):], &again, Limits{}); err != nil {
				t.Errorf("forwarded head rejected: %v", err)
			}
		})
	}
}

func TestAppendResponseHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg, method string
		body              BodyKind // re-framing by the proxy; 0xff keeps the parsed kind
		conn              Conn
		want              string
	}{
		{
			name: "length", msg: "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n",
		},
		{
			name: "chunked", msg: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		},
		{
			name: "until-close", msg: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
		},
		{
			name: "until-close-rechunked", msg: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", method: "GET", body: BodyChunked,
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
		},
		{
			name: "chunked-to-http10-client", msg: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: "GET", body: BodyUntilClose,
			want: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
		},
		{
			name: "head-keeps-length", msg: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", method: "HEAD", body: 0xff, conn: ConnKeepAlive,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nConnection: keep-alive\r\n\r\n",
		},
		{
			name: "not-modified-keeps-length", msg: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 5\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 5\r\n\r\n",
		},
		{
			name: "no-content-drops-length", msg: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", method: "DELETE", body: 0xff,
			want: "HTTP/1.1 204 No Content\r\n\r\n",
		},
		{
			name: "switching-protocols", msg: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc=\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
		},
		{
			name: "listed-and-close", msg: "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nContent-Length: 0\r\n\r\n", method: "GET", body: 0xff, conn: ConnClose,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		},
		{
			name: "no-reason", msg: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", method: "GET", body: 0xff,
			want: "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := mustParseResponse(t, tc.msg, tc.method)
			if tc.body != 0xff {
				r.Body = tc.body
			}
			got := AppendResponseHead(nil, r, tc.conn)
			if diff := cmp.Diff(lines([]byte(tc.want)), lines(got)); diff != "" {
				t.Errorf("head (-want +got):\n%s", diff)
			}
			var again Response
			if _, err := ParseResponse(got, &again, Limits{}, []byte(tc.method)); err != nil {
				t.Errorf("forwarded head rejected: %v", err)
			}
		})
	}
}

func TestAppendHeadZeroAllocs(t *testing.T) {
	req := mustParseRequest(t, strings.Replace(browserGET, "\r\n\r\n", "\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n", 1))
	f := &Forwarding{Client: netip.MustParseAddr("2001:db8::1"), TLS: true, XForwarded: true, Forwarded: true, RealIP: true}
	dst := make([]byte, 0, 4096)
	if allocs := testing.AllocsPerRun(100, func() {
		dst = AppendRequestHead(dst[:0], req, f, ConnDefault)
	}); allocs != 0 {
		t.Errorf("got %v allocations per AppendRequestHead, want 0", allocs)
	}
	resp := mustParseResponse(t, "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 612\r\nConnection: keep-alive\r\n\r\n", "GET")
	if allocs := testing.AllocsPerRun(100, func() {
		dst = AppendResponseHead(dst[:0], resp, ConnDefault)
	}); allocs != 0 {
		t.Errorf("got %v allocations per AppendResponseHead, want 0", allocs)
	}
}

func TestEnumStrings(t *testing.T) {
	t.Parallel()
	got := []string{
		BodyNone.String(), BodyLength.String(), BodyChunked.String(), BodyUntilClose.String(), BodyKind(9).String(),
		HTTP10.String(), HTTP11.String(), Version(0).String(),
		OriginForm.String(), AbsoluteForm.String(), AuthorityForm.String(), AsteriskForm.String(), TargetForm(9).String(),
		ConnDefault.String(), ConnClose.String(), ConnKeepAlive.String(), Conn(9).String(),
	}
	want := []string{
		"none", "length", "chunked", "until-close", "BodyKind(?)",
		"HTTP/1.0", "HTTP/1.1", "HTTP/?",
		"origin-form", "absolute-form", "authority-form", "asterisk-form", "TargetForm(?)",
		"default", "close", "keep-alive", "Conn(?)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}
