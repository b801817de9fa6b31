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

// TestErrorAnswerSurvivesUnreadRequest: a client that sends its whole
// request before reading the answer, as curl does, gets the proxy's error
// answer (here 431, a head too large) although the proxy stopped reading
// the request midway. The proxy closes gracefully: it answers, half-closes
// and drains what the client still sends, for a bounded time, instead of
// closing a socket with unread bytes, which resets the connection: the
// client's next write fails and it never reads the answer.
func TestErrorAnswerSurvivesUnreadRequest(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	line := "X-Big: " + strings.Repeat("a", 8000) + "\r\n"
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		br := bufio.NewReader(c)
		// 40 KiB: over max_header_bytes (32 KiB), so the proxy answers 431
		// with bytes of the request still unread.
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"+strings.Repeat(line, 5))
		if _, err := br.Peek(1); err != nil {
			t.Fatalf("connection %d: no answer: %v", i, err)
		}
		// The answer is there; the proxy has closed the connection or is
		// about to (the pause makes sure of it, so that the next write
		// meets a closed socket without the fix).
		time.Sleep(50 * time.Millisecond)
		// The rest of the head, which the client sends before reading.
		if _, err := io.WriteString(c, strings.Repeat(line, 8)+"\r\n"); err != nil {
			t.Fatalf("connection %d: sending the rest of the request: %v (the proxy reset the connection)", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection %d: reading the answer: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 431 {
			t.Fatalf("connection %d: got %d %q (%v), want a whole 431", i, resp.StatusCode, body, err)
		}
		if !resp.Close {
			t.Errorf("connection %d: the 431 does not say Connection: close", i)
		}
		// The proxy half-closed: EOF after the answer.
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("connection %d: after the answer got %v, want EOF", i, err)
		}
	}
}

// TestLingerBounded: a client that neither closes nor stops sending after
// an error answer does not hold the connection: the proxy closes it after
// its drain bound.
func TestLingerBounded(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	c := dial(t, addr)
	c.send("GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n") // 400
	if resp, _ := c.read("GET"); resp.StatusCode != 400 {
		t.Fatalf("got %d, want 400", resp.StatusCode)
	}
	// Silent and open: the proxy closes after lingerQuiet.
	start := time.Now()
	eventually(t, "the lingering connection closed", func() bool { return p.Active() == 0 })
	if d := time.Since(start); d > lingerQuiet+5*time.Second {
		t.Errorf("closed after %v, want about %v", d, lingerQuiet)
	}
	// Sending without end: closed after lingerBytes or lingerTime.
	c2 := dial(t, addr)
	c2.send("GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c2.read("GET"); resp.StatusCode != 400 {
		t.Fatalf("got %d, want 400", resp.StatusCode)
	}
	junk := []byte(strings.Repeat("j", 64<<10))
	start = time.Now()
	for time.Since(start) < waitFor {
		if _, err := c2.c.Write(junk); err != nil {
			break
		}
	}
	if d := time.Since(start); d > lingerTime+5*time.Second {
		t.Errorf("a client sending without end was drained for %v, want at most about %v", d, lingerTime)
	}
	eventually(t, "the lingering connection closed", func() bool { return p.Active() == 0 })
}
