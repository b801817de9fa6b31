package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fulcrum test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"shop.example"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "must not cross")
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s %s proto=%s xfp=%s xff=%s body=%s", r.Method, r.URL.RequestURI(), r.Proto,
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For"), body)
		w.Header().Set("X-Sum", "7")
	})
	svc, _ := service(t, be.addr)
	cert, roots := selfSigned(t)
	var protos atomic.Pointer[string]
	_, addr := startProxy(t, &Config{
		Default: svc,
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Forward: Forwarding{XForwardedFor: true, XForwardedProto: true},
		AccessLog: func(e *Entry) {
			p := e.Proto
			protos.Store(&p)
		},
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitFor}

	resp, err := hc.Post("https://"+addr+"/up?x=1", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s, want HTTP/2", resp.Proto)
	}
	want := "POST /up?x=1 proto=HTTP/1.1 xfp=https xff=127.0.0.1 body=payload"
	if resp.StatusCode != 200 || string(body) != want {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
	if resp.Header.Get("X-Hop") != "" {
		t.Error("a field named by Connection crossed the proxy")
	}
	if resp.Trailer.Get("X-Sum") != "7" {
		t.Errorf("trailer: got %q, want 7", resp.Trailer.Get("X-Sum"))
	}
	if p := protos.Load(); p == nil || *p != "HTTP/2.0" {
		t.Errorf("access log proto: got %v, want HTTP/2.0", p)
	}

	// Several streams at once share the backend pool.
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			resp, err := hc.Get(fmt.Sprintf("https://%s/s%d", addr, i))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), fmt.Sprintf("GET /s%d ", i)) {
				err = fmt.Errorf("stream %d: got %q", i, b)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	// HTTP/1.1 over TLS takes the fast path.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /h1 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	r1, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := io.ReadAll(r1.Body)
	if !strings.HasPrefix(string(b1), "GET /h1 proto=HTTP/1.1 xfp=https") {
		t.Errorf("HTTP/1.1 over TLS: got %q", b1)
	}
}

// idleAndBusy serves a proxy whose backend holds /slow until release is
// closed, with two client connections: idle (one request answered) and
// busy (a /slow request the backend has received).
func idleAndBusy(t *testing.T) (p *Proxy, addr string, served chan error, idle, busy *client, release chan struct{}) {
	entered := make(chan struct{})
	release = make(chan struct{})
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	svc, _ := service(t, be.addr)
	p = New(&Config{Name: "web", Default: svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served = make(chan error, 1)
	go func() { served <- p.Serve(context.Background(), ln) }()
	addr = ln.Addr().String()

	idle = dial(t, addr)
	idle.roundTrip(get("/"))
	busy = dial(t, addr)
	busy.send(get("/slow"))
	<-entered
	return p, addr, served, idle, busy, release
}

func TestShutdownWaitsForRequestInFlight(t *testing.T) {
	t.Parallel()
	p, addr, served, idle, busy, release := idleAndBusy(t)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		shut <- p.Shutdown(ctx)
	}()
	if !idle.closed() {
		t.Error("idle client connection not closed by Shutdown")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, body := busy.read("GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("in-flight request: got %d %q close=%v, want 200 done with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if p.Active() != 0 {
		t.Errorf("active connections after Shutdown: %d", p.Active())
	}
}

func TestShutdownForcedAtDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	svc, _ := service(t, be.addr)
	p := New(&Config{Name: "web", Default: svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background(), ln)
	c := dial(t, ln.Addr().String())
	c.send(get("/hang"))
	eventually(t, "the request to reach the backend", func() bool { return be.conns.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: got %v, want deadline exceeded", err)
	}
	if !c.closed() {
		t.Error("client connection survived a forced Shutdown")
	}
}

func TestCloseBackend(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/hang" {
				entered <- struct{}{}
				io.Copy(io.Discard, br) // until closed
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	svc, bs := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	// One connection carrying a request...
	busy := dial(t, addr)
	busy.send(get("/hang"))
	<-entered
	// ...and one pooled.
	idle := dial(t, addr)
	idle.roundTrip(get("/"))
	if n := p.CloseBackend(bs[0]); n != 2 {
		t.Errorf("CloseBackend: got %d, want 2", n)
	}
	resp, _ := busy.read("GET")
	if resp.StatusCode != 502 {
		t.Errorf("request in flight: got %d, want 502", resp.StatusCode)
	}
	// The pool is empty: the next request connects anew.
	before := p.Stats().UpstreamConnects
	if resp, _ := idle.roundTrip(get("/")); resp.StatusCode != 200 {
		t.Errorf("after CloseBackend: got %d", resp.StatusCode)
	}
	if got := p.Stats().UpstreamConnects; got != before+1 {
		t.Errorf("connects: got %d, want %d", got, before+1)
	}
}

func TestUpdateRetiresRemovedBackends(t *testing.T) {
	t.Parallel()
	var closedA atomic.Int64
	a := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		defer closedA.Add(1)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
		}
	})
	b := startHTTP(t, hello("b"))
	svcA, _ := service(t, a.addr)
	svcB, _ := service(t, b.addr)
	p, addr := startProxy(t, &Config{Default: svcA})
	c := dial(t, addr)
	if _, body := c.roundTrip(get("/")); body != "a" {
		t.Fatalf("got %q", body)
	}
	p.Update(&Config{Name: "web", Default: svcB})
	if _, body := c.roundTrip(get("/")); body != "b" {
		t.Fatalf("after Update: got %q, want b", body)
	}
	eventually(t, "the removed backend's pooled connection to close", func() bool { return closedA.Load() == 1 })
}

func TestShutdownHTTP2InFlight(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	svc, _ := service(t, be.addr)
	cert, roots := selfSigned(t)
	p := New(&Config{Name: "web", Default: svc, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background(), ln)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitFor}
	got := make(chan string, 1)
	go func() {
		resp, err := hc.Get("https://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- resp.Proto + " " + string(b)
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		shut <- p.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with an HTTP/2 request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if g := <-got; g != "HTTP/2.0 done" {
		t.Errorf("in-flight HTTP/2 request: got %q", g)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestHTTP2Errors(t *testing.T) {
	t.Parallel()
	dies := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short")
	})
	down := startHTTP(t, hello("never"))
	dieSvc, _ := service(t, dies.addr)
	downSvc, downBs := service(t, down.addr)
	downBs[0].SetHealthy(false)
	cert, roots := selfSigned(t)
	_, addr := startProxy(t, &Config{
		Default:    dieSvc,
		Routes:     []Route{{PathPrefix: "/down", Pool: downSvc}},
		TLS:        &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorPages: map[int][]byte{503: []byte("<p>later</p>")},
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitFor}

	resp, err := hc.Get("https://" + addr + "/down")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 503 || string(body) != "<p>later</p>" {
		t.Errorf("no backend over HTTP/2: got %s %d %q", resp.Proto, resp.StatusCode, body)
	}

	resp, err = hc.Get("https://" + addr + "/cut")
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("a response cut by the backend reached the HTTP/2 client as complete: %q", body)
	}
}

func TestShutdownTLSConnections(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{})
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			close(entered)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	svc, _ := service(t, be.addr)
	cert, roots := selfSigned(t)
	p := New(&Config{Name: "web", Default: svc, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Log: testLogger(t)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background(), ln)
	dialTLS := func() *client {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitFor))
		t.Cleanup(func() { c.Close() })
		return &client{t: t, c: c, br: bufio.NewReader(c)}
	}
	idle := dialTLS()
	if resp, _ := idle.roundTrip(get("/")); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	busy := dialTLS()
	busy.send(get("/hang"))
	<-entered
	// A handshake in progress when Shutdown comes.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: got %v, want deadline exceeded", err)
	}
	if !idle.closed() || !busy.closed() {
		t.Error("TLS client connections survived Shutdown")
	}
	if p.Active() != 0 {
		t.Errorf("active after Shutdown: %d", p.Active())
	}
}

// TestCloseBackendAfterUpdate: the daemon removes a backend from the
// configuration first and cuts its remaining requests after a grace
// period; CloseBackend must still find them.
func TestCloseBackendAfterUpdate(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	gone := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		entered <- struct{}{}
		io.Copy(io.Discard, br)
	})
	stays := startHTTP(t, hello("stays"))
	svc, bs := service(t, gone.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	busy := dial(t, addr)
	busy.send(get("/hang"))
	<-entered
	svc2, _ := service(t, stays.addr)
	p.Update(&Config{Name: "web", Default: svc2})
	if n := p.CloseBackend(bs[0]); n != 1 {
		t.Errorf("CloseBackend after Update: got %d, want 1", n)
	}
	if resp, _ := busy.read("GET"); resp.StatusCode != 502 {
		t.Errorf("cut request: got %d, want 502", resp.StatusCode)
	}
	if _, body := dial(t, addr).roundTrip(get("/")); body != "stays" {
		t.Errorf("new requests: got %q", body)
	}
}

// TestHTTP2StreamedUpload: an HTTP/2 request body reaches the backend as
// the client sends it, not when it ends.
func TestHTTP2StreamedUpload(t *testing.T) {
	t.Parallel()
	got := make(chan string, 4)
	be := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				got <- line
			}
			if err != nil {
				break
			}
		}
		io.WriteString(w, "done")
	})
	svc, _ := service(t, be.addr)
	cert, roots := selfSigned(t)
	_, addr := startProxy(t, &Config{Default: svc, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitFor}
	pr, pw := io.Pipe()
	res := make(chan error, 1)
	go func() {
		resp, err := hc.Post("https://"+addr+"/up", "text/plain", pr)
		if err == nil {
			resp.Body.Close()
		}
		res <- err
	}()
	for _, line := range []string{"first\n", "second\n"} {
		io.WriteString(pw, line)
		select {
		case g := <-got:
			if g != line {
				t.Fatalf("backend got %q, want %q", g, line)
			}
		case <-time.After(waitFor):
			t.Fatalf("%q did not reach the backend before the body ended", line)
		}
	}
	pw.Close()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

// TestSetReleasing: during a hand-over, idle client connections close at
// once, a request in flight is answered with Connection: close, new
// connections still get an answer; afterwards keep-alive is back.
func TestSetReleasing(t *testing.T) {
	t.Parallel()
	p, addr, _, idle, busy, release := idleAndBusy(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		p.Shutdown(ctx)
	})
	eventually(t, "two client connections", func() bool { return p.Active() == 2 })
	// The idle connection's goroutine marks it idle just after writing
	// the response the client has read.
	eventually(t, "an idle client connection", func() bool { return idleConns(p) == 1 })

	if n := p.SetReleasing(true); n != 1 {
		t.Errorf("SetReleasing closed %d idle connections, want 1", n)
	}
	if !idle.closed() {
		t.Error("idle client connection not closed")
	}
	close(release)
	resp, body := busy.read("GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("in-flight request: got %d %q close=%v, want 200 done with Connection: close", resp.StatusCode, body, resp.Close)
	}
	fresh := dial(t, addr)
	if resp, _ := fresh.roundTrip(get("/")); resp.StatusCode != 200 || !resp.Close {
		t.Errorf("a new connection while releasing: %d close=%v, want 200 and Connection: close", resp.StatusCode, resp.Close)
	}

	p.SetReleasing(false)
	again := dial(t, addr)
	if resp, _ := again.roundTrip(get("/")); resp.StatusCode != 200 || resp.Close {
		t.Errorf("after releasing: %d close=%v, want a kept-alive 200", resp.StatusCode, resp.Close)
	}
}

// idleConns counts the client connections waiting for a request.
func idleConns(p *Proxy) int {
	n := 0
	p.conns.Each(func(c *clientConn) {
		if c.state.Load() == connIdle {
			n++
		}
	})
	return n
}
