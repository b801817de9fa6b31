package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestKeepAliveBothSides(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s xff=%s proto=%s xfh=%s", r.URL.Path, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true}})

	c := dial(t, addr)
	for i := range 5 {
		resp, body := c.roundTrip(get(fmt.Sprintf("/r%d", i)))
		want := fmt.Sprintf("path=/r%d xff=127.0.0.1 proto=http xfh=shop.example", i)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("backend connections: got %d, want 1", n)
	}
	st := p.Stats()
	if st.UpstreamConnects != 1 || st.UpstreamReuses != 4 {
		t.Errorf("upstream connects/reuses: got %d/%d, want 1/4", st.UpstreamConnects, st.UpstreamReuses)
	}
	if st.Connections != 1 || st.Requests != 5 || st.Status[2] != 5 {
		t.Errorf("stats: got %+v", st)
	}
	// A second client reuses the pooled backend connection.
	c2 := dial(t, addr)
	if resp, _ := c2.roundTrip(get("/x")); resp.StatusCode != 200 {
		t.Fatalf("second client: got %d", resp.StatusCode)
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("backend connections after a second client: got %d, want 1", n)
	}
}

func TestChunkedBothWaysWithTrailers(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
			"%x\r\n%s\r\n3\r\nxyz\r\n0\r\nX-Sum: %s\r\n\r\n", len(body), body, req.Trailer.Get("X-Check"))
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Check\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: 42\r\n\r\n")
	resp, body := c.read("POST")
	if resp.StatusCode != 200 || body != "hello worldxyz" {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, "hello worldxyz")
	}
	if !slicesEqual(resp.TransferEncoding, []string{"chunked"}) {
		t.Errorf("response framing: got %v, want chunked", resp.TransferEncoding)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer relayed both ways: got X-Sum %q, want 42", got)
	}
	if got := be.received(); !strings.Contains(got, "Transfer-Encoding: chunked\r\n") || !strings.Contains(got, "0\r\nX-Check: 42\r\n\r\n") {
		t.Errorf("backend got %q, want a chunked body with its trailer", got)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
