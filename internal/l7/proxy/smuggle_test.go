package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSmugglingRejected sends every desynchronisation vector of the issue
// in one write, each carrying a second request meant to be smuggled, and
// checks the proxy answers the error status, closes, and sends the backend
// nothing at all.
func TestSmugglingRejected(t *testing.T) {
	t.Parallel()
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	vectors := []struct {
		name, req string
		status    int
	}{
		{"CL with TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE with CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n" + smuggled, 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 38\r\n\r\n" + smuggled, 400},
		{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +0\r\n\r\n" + smuggled, 400},
		{"CL not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x0\r\n\r\n" + smuggled, 400},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n" + smuggled, 400},
		{"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n" + smuggled, 400},
		{"TE chunked then identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE gzip chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE underscore", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n" + smuggled, 400},
		{"space before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n" + smuggled, 400},
		{"NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\x00A: b\r\n\r\n" + smuggled, 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n" + smuggled, 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rContent-Length: 38\r\n\r\n" + smuggled, 400},
		{"bare LF line end", "GET / HTTP/1.1\nHost: a\n\n" + smuggled, 400},
		{"bare LF in head", "GET / HTTP/1.1\r\nHost: a\nContent-Length: 38\r\n\r\n" + smuggled, 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + smuggled, 400},
		{"chunk size 0x", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + smuggled, 400},
		{"chunk size space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n" + smuggled, 400},
		{"chunk bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + smuggled, 400},
		{"chunk overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n" + smuggled, 400},
		{"chunk data overrun", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n" + smuggled, 400},
		{"chunk data too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n" + smuggled, 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + smuggled, 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n" + smuggled, 400},
		{"host mismatch", "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n" + smuggled, 400},
		{"HTTP/0.9", "GET /\r\n\r\n" + smuggled, 400},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n" + smuggled, 400},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n" + smuggled, 505},
		{"fragment", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n" + smuggled, 400},
		{"bad expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n" + smuggled, 417},
		{"line too long", "GET /" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 40) + "\r\n", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 120) + "\r\n", 431},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
	}
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			req.Body.Close()
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		}
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	for _, v := range vectors {
		c := dial(t, addr)
		c.send(v.req)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Errorf("%s: %v", v.name, err)
			continue
		}
		if resp.StatusCode != v.status || !resp.Close {
			t.Errorf("%s: got %d close=%v, want %d and Connection: close", v.name, resp.StatusCode, resp.Close, v.status)
		}
		io.ReadAll(resp.Body)
		if !c.closed() {
			t.Errorf("%s: connection left open", v.name)
		}
	}
	// Let any late write land before looking.
	time.Sleep(50 * time.Millisecond)
	if got := be.received(); got != "" {
		t.Errorf("the backend received %q, want nothing", got)
	}
	if st := p.Stats(); st.BadRequests != uint64(len(vectors)) || st.Status[4]+st.Status[5] != uint64(len(vectors)) {
		t.Errorf("stats: got %d bad requests and %d+%d errors, want %d", st.BadRequests, st.Status[4], st.Status[5], len(vectors))
	}
	// And the proxy still serves.
	c := dial(t, addr)
	if resp, body := c.roundTrip(get("/")); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after the attempts: got %d %q", resp.StatusCode, body)
	}
}
