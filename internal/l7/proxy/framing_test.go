package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scripted answers each request on a connection with the next of answers,
// by request path ("/0", "/1"...), and records what arrived.
func scripted(t *testing.T, answers map[string]string) *rawBackend {
	return startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			a, ok := answers[req.URL.Path]
			if !ok {
				a = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
			}
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
			if strings.HasSuffix(a, "#close") {
				return
			}
		}
	})
}

func TestNoBodyResponses(t *testing.T) {
	t.Parallel()
	be := scripted(t, map[string]string{
		"/head": "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		"/204":  "HTTP/1.1 204 No Content\r\n\r\n",
		"/304":  "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1000\r\n\r\n",
		"/last": "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)

	resp, body := c.roundTrip("HEAD /head HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 {
		t.Errorf("HEAD: got %d len %d body %q, want 200, Content-Length 1000 kept, no body", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = c.roundTrip(get("/204"))
	if resp.StatusCode != 204 || body != "" {
		t.Errorf("204: got %d %q", resp.StatusCode, body)
	}
	resp, body = c.roundTrip(get("/304"))
	if resp.StatusCode != 304 || body != "" || resp.Header.Get("Etag") != `"x"` {
		t.Errorf("304: got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// The connection is still in step on both sides.
	resp, body = c.roundTrip(get("/last"))
	if resp.StatusCode != 200 || body != "last" {
		t.Errorf("after bodiless responses: got %d %q, want 200 last", resp.StatusCode, body)
	}
	if n := be.accepted.Load(); n != 1 {
		t.Errorf("backend connections: got %d, want 1", n)
	}
}

func TestCloseDelimitedResponse(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	resp, body := c.roundTrip(get("/"))
	if resp.StatusCode != 200 || body != "until the end" || !resp.Close {
		t.Fatalf("got %d %q close=%v, want 200 %q and Connection: close", resp.StatusCode, body, resp.Close, "until the end")
	}
	if !c.closed() {
		t.Error("client connection stays open after a close-delimited response")
	}
}

func TestChunkedToHTTP10Client(t *testing.T) {
	t.Parallel()
	be := scripted(t, map[string]string{
		"/": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
	raw, _ := io.ReadAll(c.br)
	want := "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcde"
	if string(raw) != want {
		t.Errorf("got %q, want %q", raw, want)
	}
}

func TestExpectContinue(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q %v, want 100 Continue before the body is sent", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not ended by an empty line: %q", blank)
	}
	c.send("payload")
	resp, body := c.read("PUT")
	if resp.StatusCode != 200 || body != "payload" {
		t.Fatalf("got %d %q, want 200 payload", resp.StatusCode, body)
	}
	if got := be.received(); strings.Contains(strings.ToLower(got), "expect") {
		t.Errorf("backend got the expectation the proxy answered: %q", got)
	}
}

func TestInterimResponseRelayed(t *testing.T) {
	t.Parallel()
	be := scripted(t, map[string]string{
		"/": "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send(get("/"))
	c.c.SetReadDeadline(time.Now().Add(waitFor))
	raw := make([]byte, 0, 256)
	want := "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for len(raw) < len(want) {
		b, err := c.br.ReadByte()
		if err != nil {
			break
		}
		raw = append(raw, b)
	}
	if string(raw) != want {
		t.Errorf("got %q, want %q", raw, want)
	}
}

func TestPipelinedInOrder(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.URL.Path == "/slow" {
				time.Sleep(50 * time.Millisecond)
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
		}
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send(get("/slow") + "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" + get("/c"))
	for _, want := range []string{"/slow", "/b", "/c"} {
		method := "GET"
		if want == "/b" {
			method = "POST"
		}
		resp, body := c.read(method)
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

func TestUpgradeTunnel(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(req.Header.Get("Connection"), "upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello from backend\n")
		// Echo lines until the client half-closes.
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, "echo "+line)
		}
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("got %v %v, want 101 with Upgrade: websocket", resp, err)
	}
	for _, want := range []string{"hello from backend\n", "echo first\n"} {
		if got, _ := c.br.ReadString('\n'); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	c.send("second\n")
	if got, _ := c.br.ReadString('\n'); got != "echo second\n" {
		t.Fatalf("got %q, want echo second", got)
	}
	c.c.(*net.TCPConn).CloseWrite()
	if !c.closed() {
		t.Error("tunnel not closed after both sides ended")
	}
	eventually(t, "the tunnel's connection to end", func() bool { return p.Active() == 0 })
}

func TestBackendDiesMidResponse(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
	})
	svc, bs := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send(get("/"))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v %v, want the 200 head", resp, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil || string(body) != "only ten b" {
		t.Errorf("got %q, %v; want the 10 bytes sent and then an unexpected EOF", body, err)
	}
	if st := p.Stats(); st.Aborted != 1 {
		t.Errorf("aborted responses: got %d, want 1", st.Aborted)
	}
	eventually(t, "1 request, 1 error on the backend", func() bool {
		rs := bs[0].RequestStats()
		return rs.Requests == 1 && rs.Errors == 1
	})
}

func TestMalformedBackendResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, answer string }{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
		{"bad status", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n"},
		{"conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := scripted(t, map[string]string{"/": tc.answer})
			svc, _ := service(t, be.addr)
			_, addr := startProxy(t, &Config{Default: svc})
			c := dial(t, addr)
			resp, _ := c.roundTrip(get("/"))
			if resp.StatusCode != 502 {
				t.Errorf("got %d, want 502", resp.StatusCode)
			}
		})
	}
}

func TestBadChunkFromBackend(t *testing.T) {
	t.Parallel()
	be := scripted(t, map[string]string{
		"/": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send(get("/"))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a garbled chunked body reached the client as a complete one")
	}
	if st := p.Stats(); st.Aborted != 1 {
		t.Errorf("aborted: got %d, want 1", st.Aborted)
	}
}

// TestTunnelIdle: a tunnel lives while either direction moves, and closes
// once both have been silent for the idle timeout.
func TestTunnelIdle(t *testing.T) {
	t.Parallel()
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: feed\r\nConnection: Upgrade\r\n\r\n")
		// Server push only: the client never sends.
		for i := range 8 {
			time.Sleep(100 * time.Millisecond)
			if _, err := fmt.Fprintf(c, "tick %d\n", i); err != nil {
				return
			}
		}
		io.Copy(io.Discard, c) // then silence, until the proxy closes
	})
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc, IdleTimeout: 300 * time.Millisecond})
	c := dial(t, addr)
	c.send("GET /feed HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: feed\r\n\r\n")
	if resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"}); err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v %v, want 101", resp, err)
	}
	for i := range 8 {
		want := fmt.Sprintf("tick %d\n", i)
		if got, err := c.br.ReadString('\n'); got != want {
			t.Fatalf("got %q %v, want %q: the silent client direction ended a live tunnel", got, err, want)
		}
	}
	start := time.Now()
	if !c.closed() {
		t.Fatal("a silent tunnel was kept")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent tunnel closed after %v, want about 300ms", d)
	}
	eventually(t, "the tunnel's connection to end", func() bool { return p.Active() == 0 })
}
