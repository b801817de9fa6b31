package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/fulcrum-lb/fulcrum/internal/l7/tlsconf/testcert"
)

// l7Backend is a real net/http server on its own loopback address that
// answers with its name and records what reached it.
type l7Backend struct {
	name  string
	addr  string
	srv   *http.Server
	ln    net.Listener
	conns atomic.Int64 // TCP connections accepted
	mu    sync.Mutex
	paths []string // request targets seen
	hdrs  []http.Header
	// handle, when set, serves paths under /x/ instead of the default.
	handle http.HandlerFunc
}

func startL7Backend(t *testing.T, name string, handle http.HandlerFunc) *l7Backend {
	t.Helper()
	ln, err := net.Listen("tcp", uniqueLoopback()+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &l7Backend{name: name, addr: ln.Addr().String(), ln: ln, handle: handle}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(b.serve),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
		ErrorLog: nil,
	}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *l7Backend) serve(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.paths = append(b.paths, r.RequestURI)
	b.hdrs = append(b.hdrs, r.Header.Clone())
	b.mu.Unlock()
	if b.handle != nil && strings.HasPrefix(r.URL.Path, "/x/") {
		b.handle(w, r)
		return
	}
	w.Header().Set("X-Backend", b.name)
	io.WriteString(w, b.name)
}

func (b *l7Backend) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.paths...)
}

// httpService renders a config with one http service named web on listen:
// extra is indented service-level YAML (a http: block, health, ...).
func httpService(listen, extra string, backends ...*l7Backend) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: { listen: ADMIN }\nshutdown: { drain_timeout: 3s }\nservices:\n  - name: web\n    listen: %s\n    protocol: http\n    scheduler: rr\n%s    backends:\n", listen, extra)
	for _, be := range backends {
		fmt.Fprintf(&b, "      - { address: %s }\n", be.addr)
	}
	return b.String()
}

// client returns an HTTP client that keeps one connection per host.
func client() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true},
	}
}

func getBody(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHTTPKeepAliveBothSides(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", nil)
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "", b))
	c := client()
	const requests = 30
	for i := range requests {
		resp, body := getBody(t, c, newRequest(t, "GET", fmt.Sprintf("http://%s/page/%d", listen, i), nil))
		if resp.StatusCode != 200 || body != "b0" {
			t.Fatalf("request %d: got %d %q, want 200 b0", i, resp.StatusCode, body)
		}
	}
	if got := b.conns.Load(); got != 1 {
		t.Errorf("backend connections: got %d, want 1 reused for all %d requests", got, requests)
	}
	s := n.service("web")
	if s.Counters.Accepted != 1 {
		t.Errorf("client connections: got %d, want 1 kept alive", s.Counters.Accepted)
	}
	if h := s.HTTP; h == nil || h.Requests != requests || h.Status2xx != requests || h.UpstreamConnects != 1 || h.UpstreamReuses != requests-1 {
		t.Errorf("http counters: got %+v, want %d requests, 1 upstream connect, %d reuses", h, requests, requests-1)
	}
	// The backend sees the client through the forwarding headers.
	b.mu.Lock()
	if len(b.hdrs) == 0 {
		b.mu.Unlock()
		t.Fatal("the backend saw no request")
	}
	h := b.hdrs[0]
	b.mu.Unlock()
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For: got %q, want 127.0.0.1", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto: got %q, want http", got)
	}
}

func TestHTTPChunkedBothWays(t *testing.T) {
	t.Parallel()
	var gotTE atomic.Value
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		gotTE.Store(strings.Join(r.TransferEncoding, ","))
		// Echo in pieces without a length: a chunked response, written
		// while the request body still arrives.
		http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 1000)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	listen := freeAddr(t, "tcp")
	startNode(t, httpService(listen, "", b))
	pr, pw := io.Pipe()
	var want strings.Builder
	go func() {
		for i := range 200 {
			line := fmt.Sprintf("line %d of a body whose length nobody knows in advance\n", i)
			want.WriteString(line)
			pw.Write([]byte(line))
		}
		pw.Close()
	}()
	req := newRequest(t, "POST", "http://"+listen+"/x/echo", pr) // unknown length: chunked
	resp, body := getBody(t, client(), req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if body != want.String() {
		t.Errorf("echoed body: got %d bytes, want %d identical bytes", len(body), want.Len())
	}
	if got := strings.Join(resp.TransferEncoding, ","); got != "chunked" {
		t.Errorf("response Transfer-Encoding: got %q, want chunked", got)
	}
	if got, _ := gotTE.Load().(string); got != "chunked" {
		t.Errorf("request Transfer-Encoding at the backend: got %q, want chunked", got)
	}
}

// procStatus reads a field in kB of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// pattern is a deterministic, incompressible-looking stream of n bytes.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*2654435761>>13) ^ byte(x)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func hashOf(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// TestHTTPLargeBodiesStream sends 100 MB up and 100 MB down through the
// proxy and checks that the proxy's resident memory stays far below that:
// the bodies are streamed, not held.
func TestHTTPLargeBodiesStream(t *testing.T) {
	t.Parallel()
	const size = 100 << 20
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/x/upload":
			sum, n, err := hashOf(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%d %s", n, sum)
		case "/x/download":
			w.Header().Set("Content-Length", strconv.Itoa(size))
			io.Copy(w, &pattern{n: size})
		}
	})
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "", b))
	pid := n.cmd.Process.Pid
	before := procStatus(t, pid, "VmRSS")
	wantSum, _, _ := hashOf(&pattern{n: size})

	// Sample the RSS while the transfers run; VmHWM catches peaks between
	// samples.
	stop := make(chan struct{})
	var peak atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
					for _, line := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
							kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
							if kb > peak.Load() {
								peak.Store(kb)
							}
						}
					}
				}
			}
		}
	}()
	defer close(stop)

	c := client()
	req := newRequest(t, "POST", "http://"+listen+"/x/upload", &pattern{n: size})
	req.ContentLength = size
	resp, body := getBody(t, c, req)
	if want := fmt.Sprintf("%d %s", size, wantSum); resp.StatusCode != 200 || body != want {
		t.Fatalf("upload: got %d %q, want 200 %q", resp.StatusCode, body, want)
	}

	resp, err := c.Do(newRequest(t, "GET", "http://"+listen+"/x/download", nil))
	if err != nil {
		t.Fatal(err)
	}
	sum, got, err := hashOf(resp.Body)
	resp.Body.Close()
	if err != nil || got != size || sum != wantSum {
		t.Fatalf("download: got %d bytes (err %v), sum %s; want %d bytes, sum %s", got, err, sum, size, wantSum)
	}

	hwm := procStatus(t, pid, "VmHWM")
	// The binary is built with -race, whose shadow memory inflates every
	// allocation several times; still, buffering a body would add at least
	// 100 MB. Allow 40 MB of growth over the idle process.
	t.Logf("fulcrum RSS: %d kB idle, %d kB peak sampled, VmHWM %d kB", before, peak.Load(), hwm)
	if growth := hwm - before; growth > 40<<10 {
		t.Errorf("fulcrum's resident memory grew by %d kB (idle %d kB, high-water mark %d kB) while moving 2×100 MB; want the bodies streamed",
			growth, before, hwm)
	}
}

// wsEcho upgrades the request and echoes every message until a close.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		typ, p, err := c.Read(r.Context())
		if err != nil {
			return // a close frame is answered by Read
		}
		if err := c.Write(r.Context(), typ, p); err != nil {
			return
		}
	}
}

func TestHTTPWebSocketEcho(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", wsEcho)
	listen := freeAddr(t, "tcp")
	startNode(t, httpService(listen, "", b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+listen+"/x/ws", nil)
	if err != nil {
		t.Fatalf("handshake through the proxy: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: got %d, want 101", resp.StatusCode)
	}
	c.SetReadLimit(1 << 20)
	for i, msg := range []string{"hello", strings.Repeat("a longer message ", 100), strings.Repeat("x", 70000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != websocket.MessageText || string(p) != msg {
			t.Fatalf("message %d: got a %v message of %d bytes, want the text echoed (%d bytes)", i, typ, len(p), len(msg))
		}
	}
	// Close waits for the backend's close frame, relayed back.
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: got %v; want the close echoed", err)
	}
}

// writeCert issues a certificate for names and writes it and its key
// into dir, returning their paths.
func writeCert(t *testing.T, ca *testcert.CA, dir, base string, names ...string) (string, string) {
	t.Helper()
	crt, key, err := ca.Issue(names...)
	if err != nil {
		t.Fatal(err)
	}
	cp, kp := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(cp, crt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return cp, kp
}

func TestHTTPOverTLSWithH2AndSNI(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", nil)
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c1, k1 := writeCert(t, ca, dir, "www", "www.example.test", "127.0.0.1")
	c2, k2 := writeCert(t, ca, dir, "api", "api.example.test")
	listen := freeAddr(t, "tcp")
	api := startL7Backend(t, "api", nil)
	logPath := filepath.Join(dir, "access.log")
	tlsBlock := fmt.Sprintf(`    http:
      tls:
        certificates:
          - { cert: %s, key: %s }
          - { cert: %s, key: %s }
      routes:
        - { name: api, host: api.example.test, backends: [{ address: %s }] }
      access_log: { path: %s, format: json }
`, c1, k1, c2, k2, api.addr, logPath)
	n := startNode(t, httpService(listen, tlsBlock, b))

	// The Host (HTTP/2's :authority) routes as over HTTP/1.1: the SNI
	// name is also the Host here.
	tests := []struct {
		name, serverName string
		h2               bool
		wantProto        int
		wantBody         string
	}{
		{name: "h2", serverName: "www.example.test", h2: true, wantProto: 2, wantBody: "b0"},
		{name: "h2 with SNI", serverName: "api.example.test", h2: true, wantProto: 2, wantBody: "api"},
		{name: "http/1.1 over TLS", serverName: "www.example.test", wantProto: 1, wantBody: "b0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: tt.serverName},
				ForceAttemptHTTP2: tt.h2,
			}
			if !tt.h2 {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
			}
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			defer tr.CloseIdleConnections()
			for i := range 3 {
				req := newRequest(t, "GET", "https://"+listen+"/tls/"+strconv.Itoa(i), nil)
				req.Host = tt.serverName
				resp, body := getBody(t, c, req)
				if resp.StatusCode != 200 || body != tt.wantBody {
					t.Fatalf("got %d %q, want 200 %s", resp.StatusCode, body, tt.wantBody)
				}
				if resp.ProtoMajor != tt.wantProto {
					t.Errorf("protocol: got %s, want HTTP/%d", resp.Proto, tt.wantProto)
				}
				// The certificate verified for the name (RootCAs + ServerName).
				if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != tt.serverName {
					t.Errorf("certificate: got %q, want the one for %q", got, tt.serverName)
				}
			}
		})
	}
	b.mu.Lock()
	var proto string
	if len(b.hdrs) > 0 {
		proto = b.hdrs[0].Get("X-Forwarded-Proto")
	}
	b.mu.Unlock()
	if proto != "https" {
		t.Errorf("X-Forwarded-Proto behind TLS: got %q, want https", proto)
	}
	if h := n.service("web").HTTP; h == nil || h.Status2xx != 9 {
		t.Errorf("http counters: got %+v, want 9 2xx", h)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(logPath)
		if strings.Count(string(data), `"proto":"HTTP/2.0"`) == 6 && strings.Count(string(data), `"proto":"HTTP/1.1"`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log: got %q, want 6 HTTP/2.0 and 3 HTTP/1.1 requests", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smuggling lists requests that could desynchronise a proxy and its
// backend (issue #5). Each is followed by a request to /smuggled, which
// must never reach the backend either. Each attempt is written at once, so
// the proxy has the malformed bytes, even those in a chunked body, before
// it forwards anything: nothing of it may reach the backend. (An error in
// a body that arrives later can only cut the backend connection; see
// docs/l7.md.)
var smuggling = []struct{ name, req string }{
	{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
	{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcde"},
	{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd"},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd"},
	{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
	{"TE not chunked last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"},
	{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"},
	{"TE obfuscated", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
	{"TE quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"},
	{"TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"},
	{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
	{"tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 0\r\n\r\n"},
	{"bad byte in name", "GET / HTTP/1.1\r\nHost: a\r\nX-A\x01: b\r\n\r\n"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"},
	{"CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"},
	{"bare LF line", "GET / HTTP/1.1\nHost: a\r\n\r\n"},
	{"bare LF header", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"},
	{"bare CR header", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n"},
	{"chunk size hex overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\na\r\n0\r\n\r\n"},
	{"chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\na\r\n0\r\n\r\n"},
	{"chunk size with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n"},
	{"chunk size bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n"},
	{"chunk data overrun", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n"},
	{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
	{"no host", "GET / HTTP/1.1\r\n\r\n"},
	{"fragment in target", "GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n"},
}

func TestHTTPSmugglingRejected(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", nil)
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "", b))
	for i, tc := range smuggling {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", listen, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			// Each case has its own target, /cN, to tell what reached the
			// backend.
			req := strings.Replace(tc.req, " / ", fmt.Sprintf(" /c%d ", i), 1)
			io.WriteString(c, req+"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("got status %d, want 400", resp.StatusCode)
			}
			// The connection is closed after the 400: nothing else is read
			// from it, in particular not the smuggled request.
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the 400: got %q (%v), want the connection closed", rest, err)
			}
		})
	}
	// The service still works, and counted what it refused.
	resp, body := getBody(t, client(), newRequest(t, "GET", "http://"+listen+"/ok", nil))
	if resp.StatusCode != 200 || body != "b0" {
		t.Errorf("valid request after the attempts: got %d %q", resp.StatusCode, body)
	}
	if h := n.service("web").HTTP; h == nil || h.BadRequests != uint64(len(smuggling)) || h.Status4xx != uint64(len(smuggling)) {
		t.Errorf("http counters: got %+v, want %d bad requests answered 400", h, len(smuggling))
	}
	// Let anything still in flight to the backend land.
	time.Sleep(500 * time.Millisecond)
	if seen := b.seen(); len(seen) != 1 || seen[0] != "/ok" {
		t.Errorf("the backend saw %q; want only /ok, none of the attempts", seen)
	}
}

func TestHTTPBackendDiesMidResponse(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(1<<20))
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // dies with 960 KiB still owed
		}
	})
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "", b))
	c := client()
	resp, err := c.Do(newRequest(t, "GET", "http://"+listen+"/x/die", nil))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || got >= 1<<20 {
		t.Errorf("client read %d bytes, err %v; want the response cut short with an error, never passed off as complete", got, err)
	}
	// The proxy goes on serving.
	resp, body := getBody(t, c, newRequest(t, "GET", "http://"+listen+"/after", nil))
	if resp.StatusCode != 200 || body != "b0" {
		t.Errorf("next request: got %d %q, want 200 b0", resp.StatusCode, body)
	}
	if h := n.service("web").HTTP; h == nil || h.Aborted != 1 {
		t.Errorf("aborted responses: got %+v, want 1", h)
	}
}

func TestHTTPFallbackAndErrorPage(t *testing.T) {
	t.Parallel()
	sorry := startL7Backend(t, "sorry", nil)
	dead := startL7Backend(t, "dead", nil)
	// Checked down from the start (initial: down, and the check port is
	// closed), so no request is ever sent to it.
	health := "    health: { type: tcp, port: 1, interval: 100ms, initial: down }\n"

	t.Run("fallback", func(t *testing.T) {
		t.Parallel()
		listen := freeAddr(t, "tcp")
		startNode(t, httpService(listen, health+"    fallback: "+sorry.addr+"\n", dead))
		resp, body := getBody(t, client(), newRequest(t, "GET", "http://"+listen+"/", nil))
		if resp.StatusCode != 200 || body != "sorry" {
			t.Errorf("got %d %q, want 200 from the sorry server", resp.StatusCode, body)
		}
	})
	t.Run("error page", func(t *testing.T) {
		t.Parallel()
		page := filepath.Join(t.TempDir(), "503.html")
		const html = "<html><body>We are down for maintenance.</body></html>\n"
		if err := os.WriteFile(page, []byte(html), 0o644); err != nil {
			t.Fatal(err)
		}
		listen := freeAddr(t, "tcp")
		startNode(t, httpService(listen, health+"    http: { error_pages: { 503: "+page+" } }\n", dead))
		resp, body := getBody(t, client(), newRequest(t, "GET", "http://"+listen+"/", nil))
		if resp.StatusCode != 503 || body != html {
			t.Errorf("got %d %q, want 503 with the configured page", resp.StatusCode, body)
		}
	})
	if seen := dead.seen(); len(seen) != 0 {
		t.Errorf("the down backend got %q", seen)
	}
}

// TestHTTPErrorAnswerIsSentOnce checks that a request the balancer answers
// itself (503: no backend) on a kept-alive connection is answered once and
// consumed: the next bytes on the connection are the next request's.
func TestHTTPErrorAnswerIsSentOnce(t *testing.T) {
	t.Parallel()
	dead := startL7Backend(t, "dead", nil)
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "    health: { type: tcp, port: 1, interval: 100ms, initial: down }\n", dead))
	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 503 {
		t.Fatalf("got %d, want 503", resp.StatusCode)
	}
	// Nothing more may arrive before the next request.
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if b, err := br.ReadByte(); err == nil {
		rest, _ := br.Peek(br.Buffered())
		t.Errorf("after the 503, unasked bytes arrived: %q", append([]byte{b}, rest...))
	}
	if h := n.service("web").HTTP; h == nil || h.Requests != 1 || h.Status5xx != 1 {
		t.Errorf("http counters: got %+v, want 1 request answered 503 once", h)
	}
}

func TestHTTPRoutingByHostAndPath(t *testing.T) {
	t.Parallel()
	main, api, static, wild := startL7Backend(t, "main", nil), startL7Backend(t, "api", nil), startL7Backend(t, "static", nil), startL7Backend(t, "wild", nil)
	listen := freeAddr(t, "tcp")
	routes := fmt.Sprintf(`    http:
      routes:
        - { name: api, host: api.example.test, backends: [{ address: %s }] }
        - { name: static, path_prefix: /static/, backends: [{ address: %s }] }
        - { name: wild, host: "*.wild.test", path_prefix: /w/, backends: [{ address: %s }] }
`, api.addr, static.addr, wild.addr)
	n := startNode(t, httpService(listen, routes, main))
	c := client()
	for _, tc := range []struct{ host, path, want string }{
		{"www.example.test", "/", "main"},
		{"api.example.test", "/static/x.css", "api"}, // first match wins
		{"API.example.test:" + strings.Split(listen, ":")[1], "/v1", "api"},
		{"www.example.test", "/static/x.css", "static"},
		{"www.example.test", "/staticx", "main"},
		{"a.wild.test", "/w/1", "wild"},
		{"a.wild.test", "/v/1", "main"},
		{"wild.test", "/w/1", "main"},
	} {
		req := newRequest(t, "GET", "http://"+listen+tc.path, nil)
		req.Host = tc.host
		if _, body := getBody(t, c, req); body != tc.want {
			t.Errorf("Host %s path %s: got %q, want %q", tc.host, tc.path, body, tc.want)
		}
	}
	st := n.service("web")
	if len(st.Routes) != 3 || st.Routes[0].Name != "web/api" || st.Routes[2].Host != "*.wild.test" || len(st.Routes[0].Backends) == 0 {
		t.Fatalf("status routes: got %+v", st.Routes)
	}
	if rq := st.Routes[0].Backends[0].Requests; rq != 2 {
		t.Errorf("api backend requests: got %d, want 2", rq)
	}
}

func TestHTTPCookiePersistence(t *testing.T) {
	t.Parallel()
	bs := []*l7Backend{startL7Backend(t, "b0", nil), startL7Backend(t, "b1", nil), startL7Backend(t, "b2", nil)}
	listen := freeAddr(t, "tcp")
	startNode(t, httpService(listen, "    http: { cookie: { name: SRV, secret: s3cret } }\n", bs...))
	c := client()
	// Without a cookie, rr spreads requests and every answer sets one.
	cookies := map[string]string{} // backend → cookie value
	for range 6 {
		resp, body := getBody(t, c, newRequest(t, "GET", "http://"+listen+"/", nil))
		var v string
		for _, ck := range resp.Cookies() {
			if ck.Name == "SRV" {
				v = ck.Value
			}
		}
		if v == "" {
			t.Fatalf("response from %s: no SRV cookie in %q", body, resp.Header["Set-Cookie"])
		}
		for _, be := range bs {
			if strings.Contains(v, be.addr) || strings.Contains(v, strings.Split(be.addr, ":")[0]) {
				t.Errorf("cookie %q reveals the backend address %s", v, be.addr)
			}
		}
		if old, ok := cookies[body]; ok && old != v {
			t.Errorf("backend %s: got cookie %q and %q, want one id per backend", body, old, v)
		}
		cookies[body] = v
	}
	if len(cookies) != 3 {
		t.Fatalf("got cookies for %v, want all three backends under rr", cookies)
	}
	// With a cookie, every request goes to its backend.
	for name, v := range cookies {
		for i := range 5 {
			req := newRequest(t, "GET", "http://"+listen+"/", nil)
			req.AddCookie(&http.Cookie{Name: "SRV", Value: v})
			if _, body := getBody(t, c, req); body != name {
				t.Fatalf("request %d with the cookie of %s: answered by %s", i, name, body)
			}
		}
	}
}

func TestHTTPAccessLog(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", nil)
	listen := freeAddr(t, "tcp")
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := httpService(listen, "    http: { access_log: { path: "+logPath+" } }\n", b)
	n := startNode(t, cfg)
	// A line is written once its response is sent: the client can have
	// the answer before the line is there. Each request waits for the
	// line of the one before, so that the lines come in request order.
	var lines []string
	waitLines := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			data, _ := os.ReadFile(logPath)
			lines = nil
			if s := strings.TrimSuffix(string(data), "\n"); s != "" {
				lines = strings.Split(s, "\n")
			}
			if len(lines) >= n || time.Now().After(deadline) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c := client()
	for i := range 3 {
		getBody(t, c, newRequest(t, "GET", fmt.Sprintf("http://%s/logged/%d?q=1", listen, i), nil))
		waitLines(i + 1)
	}
	raw, _ := net.DialTimeout("tcp", listen, 5*time.Second)
	io.WriteString(raw, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
	io.ReadAll(raw)
	raw.Close()
	waitLines(4)
	if len(lines) != 4 {
		t.Fatalf("access log: got %d lines %q, want 4", len(lines), lines)
	}
	for i := range 3 {
		// The engine logs the path; whether with its query is its choice.
		target := fmt.Sprintf(`"GET /logged/%d`, i)
		want := fmt.Sprintf(` HTTP/1.1" 200 2 "%s" "web" "%s" 0 `, listen, b.addr)
		if !strings.HasPrefix(lines[i], "127.0.0.1 - - [") || !strings.Contains(lines[i], target) || !strings.Contains(lines[i], want) {
			t.Errorf("line %d: got %q, want it to contain %q and %q", i, lines[i], target, want)
		}
	}
	if !strings.Contains(lines[3], `" 400 `) || !strings.Contains(lines[3], `"web" "-" `) {
		t.Errorf("malformed request line: got %q, want status 400 and no backend", lines[3])
	}

	// logrotate: rename the file, then SIGHUP; new lines go to a new file.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if r := n.reload(cfg); r.LastError != "" {
		t.Fatalf("reload: %s", r.LastError)
	}
	getBody(t, client(), newRequest(t, "GET", "http://"+listen+"/rotated", nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(logPath)
		if strings.Contains(string(data), "GET /rotated ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reopen: new file holds %q, want the request to /rotated", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if old, _ := os.ReadFile(logPath + ".1"); strings.Count(string(old), "\n") != 4 {
		t.Errorf("rotated file: got %q, want the 4 lines from before", old)
	}
}

// TestHTTPStreamsAsTheBackendWrites checks that a response is relayed as
// it is produced (server-sent events, long polling, progress output):
// the backend writes its second line only after the client got the first.
func TestHTTPStreamsAsTheBackendWrites(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	var once sync.Once
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-got:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: second\n\n")
	})
	t.Cleanup(func() { once.Do(func() { close(got) }) })
	listen := freeAddr(t, "tcp")
	startNode(t, httpService(listen, "", b))
	start := time.Now()
	resp, err := client().Do(newRequest(t, "GET", "http://"+listen+"/x/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: got %q, %v", line, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("first event arrived after %v; want it relayed as soon as the backend flushed it", took)
	}
	once.Do(func() { close(got) })
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest: got %q", rest)
	}
}

// TestHTTPRemovedBackendLosesItsConnections checks quiescent: false on an
// http service: a backend that goes down has its in-flight response cut
// after removal_grace instead of running to its end.
func TestHTTPRemovedBackendLosesItsConnections(t *testing.T) {
	t.Parallel()
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		for range 400 { // 20 s if nothing cuts it
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	// The check goes to a port of its own, so that closing it takes the
	// backend down while its data port keeps serving.
	check, err := net.Listen("tcp", strings.Split(b.addr, ":")[0]+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	go func() {
		for {
			c, err := check.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := check.Addr().(*net.TCPAddr).Port
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, fmt.Sprintf("    quiescent: false\n    removal_grace: 300ms\n    health: { type: tcp, port: %d, interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }\n", port), b))

	start := time.Now()
	go func() {
		for len(b.seen()) == 0 && time.Since(start) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		check.Close() // the backend's check fails from now on
	}()
	// Cut before the head reached the client, the answer is a 502; after,
	// the body ends with an error. Either way not after the 20 s the
	// backend would take.
	resp, err := client().Do(newRequest(t, "GET", "http://"+listen+"/x/slow", nil))
	if err == nil {
		if resp.StatusCode == 200 {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
	}
	if took := time.Since(start); took > 10*time.Second || (err == nil && resp.StatusCode == 200) {
		t.Errorf("the response ran %v and ended with %v; want it cut soon after the backend went down", took, err)
	}
	// The line may be written just after the connection closed.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(n.Logs(), "closed connections of a removed backend") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about closing the removed backend's connections")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPSIGTERMDrains checks that SIGTERM lets a request in flight on an
// http service finish, then exits.
func TestHTTPSIGTERMDrains(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	b := startL7Backend(t, "b0", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		time.Sleep(time.Second)
		io.WriteString(w, "finished")
	})
	listen := freeAddr(t, "tcp")
	n := startNode(t, httpService(listen, "", b))
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client().Do(newRequest(t, "GET", "http://"+listen+"/x/slow", nil))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- result{string(body), err}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the backend")
	}
	n.signal(syscall.SIGTERM)
	if r := <-done; r.err != nil || r.body != "finished" {
		t.Errorf("request in flight at SIGTERM: got %q, %v; want it finished", r.body, r.err)
	}
	if err := n.waitExit(10 * time.Second); err != nil {
		t.Errorf("exit: %v", err)
	}
	if _, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		t.Errorf("the listener still accepts after SIGTERM")
	}
}

// TestHTTPCookieSameOnEveryNode checks that two balancer nodes with the
// same config name a backend with the same cookie id, so a browser keeps
// its backend when the VIP moves to the other node.
func TestHTTPCookieSameOnEveryNode(t *testing.T) {
	t.Parallel()
	bs := []*l7Backend{startL7Backend(t, "b0", nil), startL7Backend(t, "b1", nil), startL7Backend(t, "b2", nil)}
	cookie := "    http: { cookie: { name: SRV, secret: shared } }\n"
	la, lb := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	startNode(t, httpService(la, cookie, bs...))
	startNode(t, httpService(lb, cookie, bs...))
	c := client()
	for range 3 {
		resp, body := getBody(t, c, newRequest(t, "GET", "http://"+la+"/", nil))
		var id string
		for _, ck := range resp.Cookies() {
			if ck.Name == "SRV" {
				id = ck.Value
			}
		}
		for i := range 3 {
			req := newRequest(t, "GET", "http://"+lb+"/", nil)
			req.AddCookie(&http.Cookie{Name: "SRV", Value: id})
			resp, got := getBody(t, c, req)
			if got != body {
				t.Fatalf("request %d to the other node with %s's cookie %q: answered by %s", i, body, id, got)
			}
			for _, ck := range resp.Cookies() {
				if ck.Name == "SRV" {
					t.Errorf("the other node set a new cookie %q for a request it honoured", ck.Value)
				}
			}
		}
	}
}
