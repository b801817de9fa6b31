package http1_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// A proxy's request loop over pipelined requests: parse what is buffered,
// read more while the head is incomplete, forward the head, then relay the
// body by its framing.
func ExampleParseRequest() {
	conn := strings.NewReader("GET /a HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive\r\n\r\n" +
		"POST /cart HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: shop\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	lim := http1.Limits{}
	br := bufio.NewReaderSize(conn, http1.DefaultMaxHeaderBytes)
	var req http1.Request
	var cr http1.ChunkedReader
	fw := &http1.Forwarding{Client: netip.MustParseAddr("192.0.2.7"), XForwarded: true}
	var out []byte
	for {
		buf, _ := br.Peek(br.Buffered())
		n, err := http1.ParseRequest(buf, &req, lim)
		if errors.Is(err, http1.ErrIncomplete) {
			if _, err := br.Peek(len(buf) + 1); err != nil {
				return // connection closed between requests
			}
			continue
		}
		if e := (*http1.Error)(nil); errors.As(err, &e) {
			fmt.Printf("answer %d and close: %v\n", e.Status, e)
			return
		}
		out = http1.AppendRequestHead(out[:0], &req, fw, http1.ConnDefault)
		fmt.Printf("%q\n", out)
		br.Discard(n)
		switch req.BodyKind() {
		case http1.BodyChunked:
			cr.Reset(br, lim)
			body, err := io.ReadAll(&cr)
			fmt.Printf("body %q %v\n", body, err)
		case http1.BodyLength:
			br.Discard(int(req.ContentLength))
		}
	}
	// Output:
	// "GET /a HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\n\r\n"
	// "POST /cart HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\n\r\n"
	// body "abc" <nil>
	// answer 400 and close: http1: both Content-Length and Transfer-Encoding
}
