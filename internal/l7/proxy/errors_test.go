package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// deadAddr is a loopback address nothing listens on, reserved so that
// nobody else can take it (package freeport).
func deadAddr(t *testing.T) netip.AddrPort {
	return netip.MustParseAddrPort(freeport.TCP(t))
}

func hello(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
}

func TestConnectFailureRetried(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("alive"))
	svc, bs := service(t, deadAddr(t), be.addr)
	p, addr := startProxy(t, &Config{Default: svc, Retries: 1})
	c := dial(t, addr)
	for i := range 4 {
		resp, body := c.roundTrip("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		if resp.StatusCode != 200 || body != "alive" {
			t.Fatalf("request %d: got %d %q, want 200 from the live backend", i, resp.StatusCode, body)
		}
	}
	if st := bs[0].Stats(); st.ConnectFailed == 0 {
		t.Error("the dead backend's connect failures were not counted")
	}
	eventually(t, "every attempt on the dead backend counted as an error", func() bool {
		rs := bs[0].RequestStats()
		return rs.Errors > 0 && rs.Errors == rs.Requests
	})
	if st := p.Stats(); st.Status[2] != 4 {
		t.Errorf("2xx: got %d, want 4", st.Status[2])
	}
}

func TestConnectFailureWithoutRetries(t *testing.T) {
	t.Parallel()
	svc, _ := service(t, deadAddr(t))
	_, addr := startProxy(t, &Config{Default: svc, ErrorPages: map[int][]byte{502: []byte("<h1>bad gateway</h1>")}})
	c := dial(t, addr)
	resp, body := c.roundTrip(get("/"))
	if resp.StatusCode != 502 || body != "<h1>bad gateway</h1>" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("got %d %q %q, want 502 with the configured page", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

func TestResponseTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	svc, bs := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc, ResponseTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	start := time.Now()
	resp, _ := c.roundTrip(get("/slow"))
	if resp.StatusCode != 504 {
		t.Fatalf("got %d, want 504", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("504 took %v", d)
	}
	eventually(t, "the timeout counted against the backend", func() bool { return bs[0].RequestStats().Errors == 1 })
	// The connection is reusable after the 504: nothing was half-read
	// from the client.
	if resp, _ := c.roundTrip(get("/slow")); resp.StatusCode != 504 {
		t.Errorf("second request: got %d, want 504", resp.StatusCode)
	}
}

func TestNoBackend503(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("x"))
	svc, bs := service(t, be.addr)
	bs[0].SetHealthy(false)
	p, addr := startProxy(t, &Config{Default: svc, ErrorPages: map[int][]byte{503: []byte("<p>maintenance</p>")}})
	c := dial(t, addr)
	resp, body := c.roundTrip(get("/"))
	if resp.StatusCode != 503 || body != "<p>maintenance</p>" {
		t.Errorf("got %d %q, want 503 with the custom page", resp.StatusCode, body)
	}
	resp, body = c.roundTrip("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 503 || body != "" {
		t.Errorf("HEAD: got %d %q, want 503 without body", resp.StatusCode, body)
	}
	// Without a page, the built-in text.
	svc2, bs2 := service(t, be.addr)
	bs2[0].SetHealthy(false)
	p.Update(&Config{Name: "web", Default: svc2})
	resp, body = c.roundTrip(get("/"))
	if resp.StatusCode != 503 || body != "503 Service Unavailable\n" {
		t.Errorf("built-in page: got %d %q", resp.StatusCode, body)
	}
	if n := be.conns.Load(); n != 0 {
		t.Errorf("backend connections: got %d, want 0", n)
	}
}

func TestFallbackServes(t *testing.T) {
	t.Parallel()
	primary := startHTTP(t, hello("primary"))
	sorry := startHTTP(t, hello("sorry"))
	fb := balancer.NewBackend(sorry.addr, 1, 0)
	svc, bs := serviceWith(t, fb, nil, primary.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	if _, body := c.roundTrip(get("/")); body != "primary" {
		t.Fatalf("got %q, want primary", body)
	}
	bs[0].SetHealthy(false)
	if resp, body := c.roundTrip(get("/")); resp.StatusCode != 200 || body != "sorry" {
		t.Fatalf("primary down: got %d %q, want the fallback", resp.StatusCode, body)
	}
	bs[0].SetHealthy(true)
	if _, body := c.roundTrip(get("/")); body != "primary" {
		t.Fatalf("primary back: got %q", body)
	}
}

// TestStaleIdleConnectionRetried: the backend closes each keep-alive
// connection after one response without saying so; an idempotent request
// on the pooled (dead) connection goes again on a new one.
func TestStaleIdleConnectionRetried(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	for i := range 3 {
		resp, body := c.roundTrip(get("/"))
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: got %d %q", i, resp.StatusCode, body)
		}
		// Let the close reach the proxy's pooled socket.
		time.Sleep(20 * time.Millisecond)
	}
	if st := p.Stats(); st.UpstreamConnects != 3 {
		t.Errorf("connects: got %d, want 3 (one per request, each reuse failing)", st.UpstreamConnects)
	}
	// A POST with a body is not replayed blindly: the pooled connection
	// is checked before the body is committed to it.
	resp, body := c.roundTrip("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST: got %d %q", resp.StatusCode, body)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d", len(b))
	})
	svc, _ := service(t, be.addr)
	var entries atomic.Pointer[[]string]
	entries.Store(&[]string{})
	_, addr := startProxy(t, &Config{Default: svc, AccessLog: func(e *Entry) {
		l := append(*entries.Load(), fmt.Sprintf("%s %s %s %s %s %s %d %d %d %v", e.Client.Addr(), e.Service, e.Backend,
			e.Method, e.Host, e.Path, e.Status, e.BytesIn, e.BytesOut, e.Total > 0 && e.Wait <= e.Total))
		entries.Store(&l)
	}})
	c := dial(t, addr)
	c.roundTrip("POST /up?q=1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello")
	c.roundTrip("GET / HTTP/1.1\r\nHost: shop\r\nHost: x\r\n\r\n")
	want := []string{
		fmt.Sprintf("127.0.0.1 web %s POST shop /up?q=1 200 5 5 true", be.addr),
		"127.0.0.1 web     400 0 0 false",
	}
	// The entry is written after the response: wait for it.
	eventually(t, "two access-log entries", func() bool { return len(*entries.Load()) >= len(want) })
	got := *entries.Load()
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

// TestEarlyResponseToUpload: a backend that refuses an upload from its
// head (a size limit) answers and closes without reading the body; the
// client gets that answer, not a 502.
func TestEarlyResponseToUpload(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
		// Closing with the body unread sends a reset: the proxy's writes
		// fail.
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	size := 8 << 20
	go func() {
		fmt.Fprintf(c.c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
		io.CopyN(c.c, &pattern{}, int64(size))
	}()
	resp, body := c.read("POST")
	if resp.StatusCode != 413 || body != "too big\n" || !resp.Close {
		t.Errorf("got %d %q close=%v, want the backend's 413 and Connection: close", resp.StatusCode, body, resp.Close)
	}
}

// TestResponseTimeoutWholeHead: a backend trickling its response head a
// byte at a time does not restart the response timeout with every byte:
// the whole head must come within it.
func TestResponseTimeoutWholeHead(t *testing.T) {
	t.Parallel()
	const head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: trickle-trickle-trickle\r\n\r\nok"
	stop := make(chan struct{})
	defer close(stop)
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		for i := range len(head) {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	svc, _ := service(t, be.addr)
	const timeout = 600 * time.Millisecond
	_, addr := startProxy(t, &Config{Default: svc, ResponseTimeout: timeout})
	c := dial(t, addr)
	start := time.Now()
	resp, _ := c.roundTrip(get("/trickle"))
	took := time.Since(start)
	if resp.StatusCode != 504 {
		t.Fatalf("got %d after %v, want 504 (the head takes %v to trickle in)", resp.StatusCode, took, time.Duration(len(head))*100*time.Millisecond)
	}
	// The head takes 7 s; the timeout fires at 0.45-0.6 s, plus a
	// generous margin for a loaded machine.
	if took > 4*time.Second {
		t.Errorf("504 after %v, want about %v", took, timeout)
	}
}
