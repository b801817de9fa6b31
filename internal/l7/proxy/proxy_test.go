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

// TestConcurrentClients drives many keep-alive clients at once over two
// backends, with bodies both ways, and checks every answer: the pools,
// counters and per-connection state under the race detector.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, b)
	}
	a, b := startHTTP(t, echo), startHTTP(t, echo)
	svc, bs := service(t, a.addr, b.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	const clients, requests = 12, 40
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for j := range requests {
				path := fmt.Sprintf("/c%d/r%d", i, j)
				body := strings.Repeat("x", j*37%500)
				var req string
				if j%3 == 0 {
					req = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", path, len(body)+1, body+"!")
					body += "!"
				} else {
					req = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
				}
				if _, err := io.WriteString(c, req); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", path, err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				if want := path + " " + body; string(got) != want {
					errs <- fmt.Errorf("%s: got %q, want %q", path, got, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	st := p.Stats()
	if st.Requests != clients*requests || st.Status[2] != clients*requests {
		t.Errorf("stats: %+v, want %d requests answered 2xx", st, clients*requests)
	}
	for _, be := range bs {
		if be.Active() != 0 {
			t.Errorf("backend %v: %d requests still counted in flight", be.Addr, be.Active())
		}
	}
	if conns := a.conns.Load() + b.conns.Load(); conns > 2*clients {
		t.Errorf("backend connections: %d for %d clients, the pool is not reused", conns, clients)
	}
}

func TestConnectionManagement(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "fwd=%s real=%s xff=%s conn=%s", r.Header.Get("Forwarded"), r.Header.Get("X-Real-IP"),
			r.Header.Get("X-Forwarded-For"), r.Header.Get("Connection"))
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc, Forward: Forwarding{XForwardedFor: true, Forwarded: true, XRealIP: true}})

	// HTTP/1.0 with keep-alive: kept, and told so.
	c := dial(t, addr)
	resp, body := c.roundTrip("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nX-Forwarded-For: 10.9.9.9\r\nX-Real-IP: 6.6.6.6\r\n\r\n")
	want := `fwd=for=127.0.0.1;host=a;proto=http real=127.0.0.1 xff=10.9.9.9, 127.0.0.1 conn=`
	if resp.StatusCode != 200 || body != want || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive: got %d %q Connection %q, want %q and keep-alive", resp.StatusCode, body, resp.Header.Get("Connection"), want)
	}
	if resp, _ := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !resp.Close {
		t.Error("Connection: close from the client not echoed")
	}
	if !c.closed() {
		t.Error("connection kept after Connection: close")
	}
	// HTTP/1.0 without keep-alive: closed after the response.
	c2 := dial(t, addr)
	if resp, _ := c2.roundTrip("GET / HTTP/1.0\r\n\r\n"); resp.StatusCode != 200 || !resp.Close {
		t.Errorf("HTTP/1.0: got %d close=%v", resp.StatusCode, resp.Close)
	}
	if !c2.closed() {
		t.Error("HTTP/1.0 connection kept")
	}
}
