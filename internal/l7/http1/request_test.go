package http1

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// reqSummary is what a test compares after a successful parse.
type reqSummary struct {
	Method, Target string
	Form           TargetForm
	Version        Version
	Host           string
	ContentLength  int64
	Chunked        bool
	Close          bool
	KeepAlive      bool
	Expect100      bool
	Upgrade        string
	Fields         int
}

func summarizeRequest(r *Request) reqSummary {
	return reqSummary{
		Method: string(r.Method), Target: string(r.Target), Form: r.Form, Version: r.Version,
		Host: string(r.Host), ContentLength: r.ContentLength, Chunked: r.Chunked,
		Close: r.Close, KeepAlive: r.KeepAlive, Expect100: r.Expect100,
		Upgrade: string(r.Upgrade), Fields: r.nf,
	}
}

const browserGET = "GET /static/app.js?v=42 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"Accept: */*\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-GB,en;q=0.9\r\n" +
	"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n" +
	"\r\n"

type requestCase struct {
	name   string
	msg    string
	status int  // 0: accepted
	code   code // for a rejection: the defect found
	want   reqSummary
}

func get(extra string) string { return "GET / HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n" }

func post(fields string) string {
	return "POST /upload HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n"
}

// ok returns the summary of a plain "GET / HTTP/1.1" to host a with n fields.
func okGET(n int) reqSummary {
	return reqSummary{Method: "GET", Target: "/", Version: HTTP11, Host: "a", ContentLength: -1, Fields: n}
}

var requestCases = func() []requestCase {
	cs := []requestCase{
		// Valid messages.
		{name: "browser-get", msg: browserGET, want: reqSummary{
			Method: "GET", Target: "/static/app.js?v=42", Version: HTTP11, Host: "www.example.com",
			ContentLength: -1, KeepAlive: true, Fields: 13}},
		{name: "http10-no-host", msg: "GET / HTTP/1.0\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/", Version: HTTP10, ContentLength: -1, Close: true}},
		{name: "http10-keep-alive", msg: "GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/", Version: HTTP10, Host: "a", ContentLength: -1, KeepAlive: true, Fields: 2}},
		{name: "http10-expect-ignored", msg: "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", want: reqSummary{
			Method: "PUT", Target: "/", Version: HTTP10, ContentLength: 1, Close: true, Fields: 2}},
		{name: "post-content-length", msg: post("Content-Length: 5\r\n") + "hello", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 5, Fields: 2}},
		{name: "post-content-length-zero", msg: post("Content-Length: 0\r\n"), want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 0, Fields: 2}},
		{name: "post-content-length-leading-zeros", msg: post("Content-Length: 005\r\n") + "hello", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 5, Fields: 2}},
		{name: "post-content-length-duplicate-identical", msg: post("Content-Length: 5\r\nContent-Length: 5\r\n") + "hello", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 5, Fields: 3}},
		{name: "post-content-length-max", msg: post("Content-Length: 9223372036854775807\r\n"), want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 1<<63 - 1, Fields: 2}},
		{name: "post-chunked", msg: post("Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: -1, Chunked: true, Fields: 2}},
		{name: "post-chunked-mixed-case", msg: post("transfer-encoding: ChUnKeD\r\n") + "0\r\n\r\n", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: -1, Chunked: true, Fields: 2}},
		{name: "post-chunked-ows", msg: post("Transfer-Encoding: \t chunked \t\r\n") + "0\r\n\r\n", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: -1, Chunked: true, Fields: 2}},
		{name: "post-chunked-trailers", msg: post("Transfer-Encoding: chunked\r\nTrailer: Checksum\r\n") + "3\r\nabc\r\n0\r\nChecksum: 900150983cd24fb0\r\n\r\n", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: -1, Chunked: true, Fields: 3}},
		{name: "expect-100-continue", msg: post("Content-Length: 3\r\nExpect: 100-Continue\r\n") + "abc", want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 3, Expect100: true, Fields: 3}},
		{name: "connection-close", msg: get("Connection: close\r\n"), want: func() reqSummary {
			s := okGET(2)
			s.Close = true
			return s
		}()},
		{name: "connection-lists-field", msg: get("Connection: X-Private, ,keep-alive\r\nX-Private: 1\r\n"), want: func() reqSummary {
			s := okGET(3)
			s.KeepAlive = true
			return s
		}()},
		{name: "websocket-upgrade", msg: "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/chat", Version: HTTP11, Host: "a", ContentLength: -1, Upgrade: "websocket", Fields: 5}},
		{name: "upgrade-without-connection-ignored", msg: get("Upgrade: h2c\r\n"), want: okGET(2)},
		{name: "absolute-form", msg: "GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "http://a/x?y", Form: AbsoluteForm, Version: HTTP11, Host: "a", ContentLength: -1, Fields: 1}},
		{name: "absolute-form-https-port-case", msg: "GET HTTPS://Example.COM:8443 HTTP/1.1\r\nHost: example.com:8443\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "HTTPS://Example.COM:8443", Form: AbsoluteForm, Version: HTTP11, Host: "Example.COM:8443", ContentLength: -1, Fields: 1}},
		{name: "absolute-form-http10-no-host", msg: "GET http://a/ HTTP/1.0\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "http://a/", Form: AbsoluteForm, Version: HTTP10, Host: "a", ContentLength: -1, Close: true}},
		{name: "options-asterisk", msg: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", want: reqSummary{
			Method: "OPTIONS", Target: "*", Form: AsteriskForm, Version: HTTP11, Host: "a", ContentLength: -1, Fields: 1}},
		{name: "connect", msg: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", want: reqSummary{
			Method: "CONNECT", Target: "example.com:443", Form: AuthorityForm, Version: HTTP11, Host: "example.com:443", ContentLength: -1, Fields: 1}},
		{name: "connect-ipv6", msg: "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", want: reqSummary{
			Method: "CONNECT", Target: "[2001:db8::1]:443", Form: AuthorityForm, Version: HTTP11, Host: "[2001:db8::1]:443", ContentLength: -1, Fields: 1}},
		{name: "host-ipv6-port", msg: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/", Version: HTTP11, Host: "[::1]:8080", ContentLength: -1, Fields: 1}},
		{name: "host-empty", msg: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/", Version: HTTP11, ContentLength: -1, Fields: 1}},
		{name: "value-obs-text-and-tabs", msg: get("X-Name: caf\xc3\xa9\tau\tlait\r\n"), want: okGET(2)},
		{name: "value-empty", msg: get("X-Empty:\r\n"), want: okGET(2)},
		{name: "target-pct-and-raw-percent-in-query", msg: "GET /a%2Fb?discount=100% HTTP/1.1\r\nHost: a\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "/a%2Fb?discount=100%", Version: HTTP11, Host: "a", ContentLength: -1, Fields: 1}},
		{name: "target-double-slash", msg: "GET //x HTTP/1.1\r\nHost: a\r\n\r\n", want: reqSummary{
			Method: "GET", Target: "//x", Version: HTTP11, Host: "a", ContentLength: -1, Fields: 1}},
		{name: "method-extension", msg: "PROPFIND /dav HTTP/1.1\r\nHost: a\r\nDepth: 1\r\n\r\n", want: reqSummary{
			Method: "PROPFIND", Target: "/dav", Version: HTTP11, Host: "a", ContentLength: -1, Fields: 2}},
		{name: "te-trailers", msg: get("TE: trailers\r\nConnection: TE\r\n"), want: okGET(3)},
		{name: "content-length-and-te-header-trailers", msg: post("TE: trailers\r\nContent-Length: 0\r\n"), want: reqSummary{
			Method: "POST", Target: "/upload", Version: HTTP11, Host: "a", ContentLength: 0, Fields: 3}},
		{name: "get-with-body", msg: "GET /search HTTP/1.1\r\nHost: a\r\nContent-Length:\t 2\r\n\r\n{}", want: reqSummary{
			Method: "GET", Target: "/search", Version: HTTP11, Host: "a", ContentLength: 2, Fields: 2}},
		{name: "header-100-fields", msg: get(strings.Repeat("X-A: 1\r\n", 99)), want: okGET(100)},

		// Content-Length and Transfer-Encoding: request smuggling.
		{name: "cl-te", msg: post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\nG", status: 400, code: codeCLWithTE},
		{name: "te-cl", msg: post("Transfer-Encoding: chunked\r\nContent-Length: 6\r\n") + "0\r\n\r\nG", status: 400, code: codeCLWithTE},
		{name: "cl-conflicting", msg: post("Content-Length: 5\r\nContent-Length: 6\r\n") + "hello!", status: 400, code: codeConflictingContentLength},
		{name: "cl-equal-value-different-bytes", msg: post("Content-Length: 5\r\nContent-Length: 05\r\n") + "hello", status: 400, code: codeConflictingContentLength},
		{name: "cl-list", msg: post("Content-Length: 5, 5\r\n") + "hello", status: 400, code: codeBadContentLength},
		{name: "cl-plus", msg: post("Content-Length: +5\r\n") + "hello", status: 400, code: codeBadContentLength},
		{name: "cl-negative", msg: post("Content-Length: -1\r\n"), status: 400, code: codeBadContentLength},
		{name: "cl-empty", msg: post("Content-Length:\r\n"), status: 400, code: codeBadContentLength},
		{name: "cl-hex", msg: post("Content-Length: 0x5\r\n") + "hello", status: 400, code: codeBadContentLength},
		{name: "cl-space-inside", msg: post("Content-Length: 1 0\r\n") + "0123456789", status: 400, code: codeBadContentLength},
		{name: "cl-decimal", msg: post("Content-Length: 5.0\r\n") + "hello", status: 400, code: codeBadContentLength},
		{name: "cl-overflow", msg: post("Content-Length: 9223372036854775808\r\n"), status: 400, code: codeBadContentLength},
		{name: "cl-overflow-long", msg: post("Content-Length: 99999999999999999999999\r\n"), status: 400, code: codeBadContentLength},
		{name: "cl-vertical-tab", msg: post("Content-Length: 5\v\r\n") + "hello", status: 400, code: codeBadFieldValue},
		{name: "cl-underscore", msg: post("Content_Length: 5\r\n") + "hello", status: 400, code: codeFramingLookalike},
		{name: "te-underscore", msg: post("Transfer_Encoding: chunked\r\n") + "0\r\n\r\n", status: 400, code: codeFramingLookalike},
		{name: "te-chunked-identity", msg: post("Transfer-Encoding: chunked, identity\r\n") + "0\r\n\r\n", status: 400, code: codeTENotChunked},
		{name: "te-identity", msg: post("Transfer-Encoding: identity\r\n") + "0\r\n\r\n", status: 400, code: codeTENotChunked},
		{name: "te-xchunked", msg: post("Transfer-Encoding: xchunked\r\n") + "0\r\n\r\n", status: 400, code: codeTENotChunked},
		{name: "te-chunkedx", msg: post("Transfer-Encoding: chunkedx\r\n") + "0\r\n\r\n", status: 400, code: codeTENotChunked},
		{name: "te-gzip", msg: post("Transfer-Encoding: gzip\r\n") + "x", status: 400, code: codeTENotChunked},
		{name: "te-gzip-chunked", msg: post("Transfer-Encoding: gzip, chunked\r\n") + "0\r\n\r\n", status: 501, code: codeUnsupportedTE},
		{name: "te-gzip-then-chunked-fields", msg: post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n", status: 501, code: codeUnsupportedTE},
		{name: "te-chunked-twice", msg: post("Transfer-Encoding: chunked, chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-chunked-twice-fields", msg: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-chunked-then-identity-fields", msg: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n") + "0\r\n\r\n", status: 400, code: codeTENotChunked},
		{name: "te-empty-element", msg: post("Transfer-Encoding: , chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-empty", msg: post("Transfer-Encoding:\r\n"), status: 400, code: codeBadTE},
		{name: "te-parameter", msg: post("Transfer-Encoding: chunked;q=1\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-quoted", msg: post("Transfer-Encoding: \"chunked\"\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-vertical-tab", msg: post("Transfer-Encoding: \vchunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadFieldValue},
		{name: "te-form-feed", msg: post("Transfer-Encoding: chunked\f\r\n") + "0\r\n\r\n", status: 400, code: codeBadFieldValue},
		{name: "te-nbsp", msg: post("Transfer-Encoding: chunked\xa0\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-space-before-colon", msg: post("Transfer-Encoding : chunked\r\n") + "0\r\n\r\n", status: 400, code: codeSpaceBeforeColon},
		{name: "te-obs-fold", msg: post("Transfer-Encoding:\r\n chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-lf-in-name", msg: post("Transfer-Encoding\n: chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBareLF},
		{name: "te-space-comma", msg: post("Transfer-Encoding: chunked ,chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadTE},
		{name: "te-nul-in-name", msg: post("Transfer-Encoding\x00: chunked\r\n") + "0\r\n\r\n", status: 400, code: codeBadFieldName},
		{name: "te-smuggled-by-bare-lf", msg: post("X-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n") + "0\r\n\r\n", status: 400, code: codeBareLF},
		{name: "te-http10", msg: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400, code: codeTEInHTTP10},
		{name: "te-http10-with-cl", msg: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", status: 400, code: codeTEInHTTP10},

		// Field syntax.
		{name: "obs-fold", msg: get("X-A: 1\r\n 2\r\n"), status: 400, code: codeObsFold},
		{name: "obs-fold-tab", msg: get("X-A: 1\r\n\t2\r\n"), status: 400, code: codeObsFold},
		{name: "whitespace-before-first-field", msg: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", status: 400, code: codeObsFold},
		{name: "whitespace-only-line", msg: get(" \r\n"), status: 400, code: codeObsFold},
		{name: "space-before-colon", msg: get("X-A : 1\r\n"), status: 400, code: codeSpaceBeforeColon},
		{name: "tab-before-colon", msg: get("X-A\t: 1\r\n"), status: 400, code: codeSpaceBeforeColon},
		{name: "host-space-before-colon", msg: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", status: 400, code: codeSpaceBeforeColon},
		{name: "name-invalid-byte", msg: get("X@A: 1\r\n"), status: 400, code: codeBadFieldName},
		{name: "name-non-ascii", msg: get("X-\xc3\xa9: 1\r\n"), status: 400, code: codeBadFieldName},
		{name: "name-empty", msg: get(": 1\r\n"), status: 400, code: codeBadFieldName},
		{name: "no-colon", msg: get("X-A 1\r\n"), status: 400, code: codeSpaceBeforeColon},
		{name: "no-colon-token", msg: get("X-A\r\n"), status: 400, code: codeNoColon},
		{name: "value-nul", msg: get("X-A: 1\x002\r\n"), status: 400, code: codeBadFieldValue},
		{name: "value-bare-cr", msg: get("X-A: 1\r2\r\n"), status: 400, code: codeBadFieldValue},
		{name: "value-cr-before-crlf", msg: get("X-A: 1\r\r\n"), status: 400, code: codeBadFieldValue},
		{name: "value-del", msg: get("X-A: 1\x7f\r\n"), status: 400, code: codeBadFieldValue},
		{name: "value-escape", msg: get("X-A: \x1b[31m\r\n"), status: 400, code: codeBadFieldValue},
		{name: "value-ctl-in-long-value", msg: get("X-A: " + strings.Repeat("abcdefgh", 4) + "\x01" + strings.Repeat("abcdefgh", 4) + "\r\n"), status: 400, code: codeBadFieldValue},
		{name: "bare-lf-field", msg: "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", status: 400, code: codeBareLF},
		{name: "bare-lf-end", msg: "GET / HTTP/1.1\r\nHost: a\r\n\n", status: 400, code: codeBareLF},
		{name: "bare-lf-everywhere", msg: "GET / HTTP/1.1\nHost: a\n\n", status: 400, code: codeBareLF},
		{name: "bare-lf-request-line", msg: "GET / HTTP/1.1\nHost: a\r\n\r\n", status: 400, code: codeBareLF},
		{name: "bare-cr-end", msg: "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", status: 400, code: codeBadFieldName},
		{name: "leading-empty-line", msg: "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadRequestLine},

		// Request line.
		{name: "line-double-space", msg: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadRequestLine},
		{name: "line-trailing-space", msg: "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", status: 400, code: codeBadVersion},
		{name: "line-leading-space", msg: " GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadRequestLine},
		{name: "line-tab-separator", msg: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadMethod},
		{name: "line-no-version", msg: "GET /\r\n\r\n", status: 400, code: codeBadRequestLine},
		{name: "line-space-in-target", msg: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadVersion},
		{name: "version-lowercase", msg: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadVersion},
		{name: "version-two-digit-minor", msg: "GET / HTTP/1.10\r\nHost: a\r\n\r\n", status: 400, code: codeBadVersion},
		{name: "version-no-minor", msg: "GET / HTTP/1\r\nHost: a\r\n\r\n", status: 400, code: codeBadVersion},
		{name: "version-1.2", msg: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: 505, code: codeUnsupportedVersion},
		{name: "version-2.0", msg: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505, code: codeUnsupportedVersion},
		{name: "version-0.9", msg: "GET / HTTP/0.9\r\n\r\n", status: 505, code: codeUnsupportedVersion},
		{name: "h2-preface", msg: h2Preface, status: 505, code: codeH2Preface},
		{name: "h2-preface-wrong-tail", msg: "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", status: 505, code: codeUnsupportedVersion},
		{name: "method-invalid", msg: "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadMethod},
		{name: "method-non-ascii", msg: "G\xc9T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadMethod},
		{name: "tls-client-hello", msg: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: 400, code: codeBadMethod},
		{name: "asterisk-with-get", msg: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeAsteriskNotOptions},
		{name: "target-relative", msg: "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-non-ascii", msg: "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-del", msg: "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-nul", msg: "GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-cr", msg: "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-fragment", msg: "GET /index.html#/../admin HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-bad-escape", msg: "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "target-truncated-escape", msg: "GET /a% HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-other-scheme", msg: "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-userinfo", msg: "GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-bad-port", msg: "GET http://a:8o/ HTTP/1.1\r\nHost: a:8o\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-port-range", msg: "GET http://a:65536/ HTTP/1.1\r\nHost: a:65536\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-empty-authority", msg: "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-two-colons", msg: "GET http://a:1:2/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "absolute-host-mismatch", msg: "GET http://internal/admin HTTP/1.1\r\nHost: public\r\n\r\n", status: 400, code: codeHostMismatch},
		{name: "absolute-host-missing", msg: "GET http://a/ HTTP/1.1\r\n\r\n", status: 400, code: codeMissingHost},
		{name: "connect-no-port", msg: "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "connect-origin-form", msg: "CONNECT /rpc HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "connect-host-mismatch", msg: "CONNECT a:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", status: 400, code: codeHostMismatch},

		// Host.
		{name: "host-missing", msg: "GET / HTTP/1.1\r\n\r\n", status: 400, code: codeMissingHost},
		{name: "host-twice", msg: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400, code: codeMultipleHost},
		{name: "host-twice-identical", msg: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", status: 400, code: codeMultipleHost},
		{name: "host-twice-http10", msg: "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", status: 400, code: codeMultipleHost},
		{name: "host-space", msg: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400, code: codeBadHost},
		{name: "host-slash", msg: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400, code: codeBadHost},
		{name: "host-userinfo", msg: "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", status: 400, code: codeBadHost},
		{name: "host-list", msg: "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", status: 400, code: codeBadHost},
		{name: "host-pct-encoded", msg: "GET / HTTP/1.1\r\nHost: caf%C3%A9.example\r\n\r\n", status: 400, code: codeBadHost},
		{name: "absolute-pct-encoded-host", msg: "GET http://a%41/ HTTP/1.1\r\nHost: aA\r\n\r\n", status: 400, code: codeBadTarget},
		{name: "host-unclosed-bracket", msg: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", status: 400, code: codeBadHost},

		// Connection management and other fields.
		{name: "expect-unknown", msg: post("Expect: 200-ok\r\nContent-Length: 0\r\n"), status: 417, code: codeBadExpect},
		{name: "upgrade-twice", msg: get("Connection: upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n"), status: 400, code: codeBadUpgrade},
		{name: "upgrade-malformed", msg: get("Connection: upgrade\r\nUpgrade: web socket\r\n"), status: 400, code: codeBadUpgrade},
		{name: "connection-not-token", msg: get("Connection: close;x\r\n"), status: 400, code: codeBadConnection},
		{name: "trailer-declares-content-length", msg: post("Transfer-Encoding: chunked\r\nTrailer: Content-Length\r\n") + "0\r\nContent-Length: 5\r\n\r\n", status: 400, code: codeBadTrailerDecl},
		{name: "trailer-declares-transfer-encoding", msg: post("Transfer-Encoding: chunked\r\nTrailer: X-A, transfer-encoding\r\n") + "0\r\n\r\n", status: 400, code: codeBadTrailerDecl},

		// Limits.
		{name: "line-too-long", msg: "GET /" + strings.Repeat("a", DefaultMaxLine) + " HTTP/1.1\r\nHost: a\r\n\r\n", status: 414, code: codeLineTooLong},
		{name: "line-too-long-incomplete", msg: "GET /" + strings.Repeat("a", DefaultMaxLine), status: 414, code: codeLineTooLong},
		{name: "head-too-large", msg: get("Cookie: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n"), status: 431, code: codeHeadTooLarge},
		{name: "head-too-large-incomplete", msg: "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("a", DefaultMaxHeaderBytes), status: 431, code: codeHeadTooLarge},
		{name: "too-many-fields", msg: get(strings.Repeat("X-A: 1\r\n", 100)), status: 431, code: codeTooManyFields},
	}
	return cs
}()

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r Request
			buf := []byte(tc.msg)
			n, err := ParseRequest(buf, &r, Limits{})
			if tc.status != 0 {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("got n=%d err=%v, want an *Error with status %d", n, err, tc.status)
				}
				if e.Status != tc.status || e.code != tc.code {
					t.Fatalf("got %d %q, want %d %q", e.Status, e, tc.status, requestErrors[tc.code].text)
				}
				if n != 0 {
					t.Errorf("got n=%d with an error, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want success", err)
			}
			if want := strings.Index(tc.msg, "\r\n\r\n") + 4; n != want {
				t.Errorf("got n=%d, want %d", n, want)
			}
			if diff := cmp.Diff(tc.want, summarizeRequest(&r)); diff != "" {
				t.Errorf("request mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRequestCorpus keeps testdata/requests in step with requestCases.
func TestRequestCorpus(t *testing.T) {
	var files []corpusFile
	for _, tc := range requestCases {
		files = append(files, corpusFile{outcome(tc.status) + "_" + tc.name + ".http", []byte(tc.msg)})
	}
	syncCorpus(t, "testdata/requests", files)
}

func TestParseRequestHTTP2Preface(t *testing.T) {
	t.Parallel()
	var r Request
	for i := 1; i < len(h2Preface); i++ {
		if _, err := ParseRequest([]byte(h2Preface[:i]), &r, Limits{}); err != ErrIncomplete {
			t.Fatalf("prefix %q: got %v, want ErrIncomplete", h2Preface[:i], err)
		}
	}
	n, err := ParseRequest([]byte(h2Preface+"\x00\x00\x12\x04"), &r, Limits{})
	if !errors.Is(err, ErrHTTP2Preface) || n != 0 {
		t.Fatalf("got n=%d err=%v, want 0, ErrHTTP2Preface", n, err)
	}
}

// TestParseRequestIncomplete feeds every proper prefix of each valid
// message: each must ask for more, never fail and never succeed early.
func TestParseRequestIncomplete(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases {
		if tc.status != 0 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			head := tc.msg[:strings.Index(tc.msg, "\r\n\r\n")+4]
			var r Request
			for i := range len(head) {
				if n, err := ParseRequest([]byte(head[:i]), &r, Limits{}); err != ErrIncomplete {
					t.Fatalf("prefix of %d bytes: got n=%d err=%v, want ErrIncomplete", i, n, err)
				}
			}
		})
	}
}

func TestParseRequestLimits(t *testing.T) {
	t.Parallel()
	msg := []byte("GET /abcdefghij HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n")
	line := len("GET /abcdefghij HTTP/1.1")
	tests := []struct {
		name   string
		lim    Limits
		status int
	}{
		{"line-at-limit", Limits{MaxLine: line}, 0},
		{"line-over-limit", Limits{MaxLine: line - 1}, 414},
		{"head-at-limit", Limits{MaxHeaderBytes: len(msg)}, 0},
		{"head-over-limit", Limits{MaxHeaderBytes: len(msg) - 1}, 431},
		{"fields-at-limit", Limits{MaxHeaders: 3}, 0},
		{"fields-over-limit", Limits{MaxHeaders: 2}, 431},
		{"fields-above-array-capped", Limits{MaxHeaders: 1000}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r Request
			_, err := ParseRequest(msg, &r, tc.lim)
			got := 0
			if e := (*Error)(nil); errors.As(err, &e) {
				got = e.Status
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tc.status {
				t.Errorf("got status %d (%v), want %d", got, err, tc.status)
			}
		})
	}
}

func TestRequestPathAndLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg, path string
	}{
		{"GET /a/b?c=d HTTP/1.1\r\nHost: a\r\n\r\n", "/a/b"},
		{"GET http://a?c HTTP/1.1\r\nHost: a\r\n\r\n", "/"},
		{"GET http://a/x/y HTTP/1.1\r\nHost: a\r\n\r\n", "/x/y"},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", ""},
	}
	for _, tc := range tests {
		var r Request
		if _, err := ParseRequest([]byte(tc.msg), &r, Limits{}); err != nil {
			t.Fatalf("%q: %v", tc.msg, err)
		}
		if got := string(r.Path()); got != tc.path {
			t.Errorf("%q: got path %q, want %q", tc.msg, got, tc.path)
		}
	}
	var r Request
	if _, err := ParseRequest([]byte(browserGET), &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Lookup("accept-language"); !ok || string(v) != "en-GB,en;q=0.9" {
		t.Errorf("got Accept-Language %q %v, want en-GB,en;q=0.9", v, ok)
	}
	if _, ok := r.Lookup("x-missing"); ok {
		t.Errorf("got X-Missing present, want absent")
	}
}

func TestParseRequestZeroAllocs(t *testing.T) {
	buf := []byte(browserGET)
	var r Request
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseRequest(buf, &r, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per ParseRequest, want 0", allocs)
	}
	// Rejections must be as cheap: a flood of bad requests costs no garbage.
	bad := []byte(post("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"))
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := ParseRequest(bad, &r, Limits{}); err == nil {
			t.Fatal("accepted CL+TE")
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per rejected request, want 0", allocs)
	}
}

func TestErrorStrings(t *testing.T) {
	t.Parallel()
	for c := codeH2Preface; c < numCodes; c++ {
		if codeInfo[c].text == "" || codeInfo[c].status == 0 {
			t.Errorf("code %d has no text or status", c)
		}
		if got := fmt.Sprint(&responseErrors[c]); !strings.HasPrefix(got, "http1: response: ") {
			t.Errorf("got %q, want the response prefix", got)
		}
		if responseErrors[c].Status != 502 {
			t.Errorf("response error %q has status %d, want 502", responseErrors[c].text, responseErrors[c].Status)
		}
		if !errors.Is(&responseErrors[c], &requestErrors[c]) {
			t.Errorf("response and request errors for %q do not match", requestErrors[c].text)
		}
	}
	if errors.Is(&requestErrors[codeBadHost], &requestErrors[codeBadTE]) {
		t.Error("different codes match")
	}
}
