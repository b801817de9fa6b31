package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// The sorry server is checked like a backend: while nothing listens on it
// it is down in status and /metrics, the WARN log says so, and clients are
// refused (and counted) instead of sent to a dead address; once it
// listens, it serves.
func TestFallbackIsHealthChecked(t *testing.T) {
	t.Parallel()
	backend, fallback, web, adminAddr := freeTCP(t), freeTCP(t), freeTCP(t), freeTCP(t)
	var logs syncbuf.Buffer
	td := startDaemonLog(t, fmt.Sprintf(`admin: { listen: %s }
services:
  - name: web
    listen: %s
    health: { type: tcp, interval: 50ms, timeout: 1s, rise: 1, fall: 1 }
    fallback: %s
    backends: [{ address: %s }]
`, adminAddr, web, fallback, backend), ha.Deps{}, slog.New(slog.NewTextHandler(&logs, nil)))

	fallbackStatus := func() admin.Backend {
		bs := td.d.Status().Services[0].Backends
		fb := bs[len(bs)-1]
		if fb.Role != admin.RoleFallback || fb.Address != fallback {
			t.Fatalf("got last backend %s %s, want the fallback %s", fb.Role, fb.Address, fallback)
		}
		return fb
	}
	waitUntil(t, "the backend and the fallback down", func() bool {
		b, fb := td.d.Status().Services[0].Backends[0], fallbackStatus()
		return !b.Healthy && fb.Health != nil && fb.Health.State == "down" && !fb.Healthy && !fb.Available
	})

	// A client finds nothing usable: closed at once, and counted.
	c, err := net.DialTimeout("tcp", web, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client with every backend and the fallback down: got %d bytes, %v; want EOF", n, err)
	}
	c.Close()
	waitUntil(t, "the refusal counted", func() bool { return td.d.Status().Services[0].Counters.Refused >= 1 })
	if fb := fallbackStatus(); fb.ConnectFailures != 0 {
		t.Errorf("got %d connects to the down fallback, want none", fb.ConnectFailures)
	}
	m := scrape(t, adminAddr)
	if got := m.sum("fulcrum_service_refused_total", "service", "web"); got < 1 {
		t.Errorf("fulcrum_service_refused_total: got %v, want at least 1", got)
	}
	if got := m.sum("fulcrum_backend_up", "service", "web", "backend", fallback); got != 0 {
		t.Errorf("fulcrum_backend_up of the fallback: got %v, want 0", got)
	}
	line := logLine(logs.String(), "backend="+fallback)
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "state=down") {
		t.Errorf("log of the fallback going down: got %q, want a WARN with state=down", line)
	}

	// Something listens at last: the fallback comes up and serves.
	ln, err := net.Listen("tcp", fallback)
	if err != nil {
		t.Skipf("the fallback's port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	serveEcho(ln, "sorry")
	waitUntil(t, "the fallback up", func() bool {
		fb := fallbackStatus()
		return fb.Health != nil && fb.Health.State == "up" && fb.Healthy
	})
	if got := ask(t, web); got != "sorry" {
		t.Errorf("with the fallback up: got %q, want sorry", got)
	}
}

// logLine is the first line of logs that contains s.
func logLine(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// An http service whose backends and fallback are all down answers 503
// and counts the request as refused.
func TestHTTPRefusedCounted(t *testing.T) {
	t.Parallel()
	backend, fallback, web := freeTCP(t), freeTCP(t), freeTCP(t)
	td := startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: web
    listen: %s
    protocol: http
    health: { type: tcp, interval: 50ms, timeout: 1s, rise: 1, fall: 1, initial: down }
    fallback: %s
    backends: [{ address: %s }]
`, web, fallback, backend))
	// The fallback starts up whatever initial says; its first check takes
	// it down.
	waitUntil(t, "the fallback down", func() bool {
		bs := td.d.Status().Services[0].Backends
		fb := bs[len(bs)-1]
		return fb.Role == admin.RoleFallback && fb.Health != nil && fb.Health.State == "down"
	})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("got status %d, want 503", resp.StatusCode)
	}
	if got := td.d.Status().Services[0].Counters.Refused; got != 1 {
		t.Errorf("refused: got %d, want 1", got)
	}
}

// A udp service with its backend down and no fallback counts a new
// client's datagram as refused.
func TestUDPRefusedCounted(t *testing.T) {
	t.Parallel()
	backend := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	listen := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	td := startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: dns
    listen: %s
    protocol: udp
    health: { type: udp, send: "q", interval: 1s, timeout: 1s, rise: 1, fall: 1, initial: down }
    backends: [{ address: %s }]
`, listen, backend))
	c, err := net.Dial("udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Datagrams until one is counted: the first may arrive before the
	// proxy reads its socket.
	waitUntil(t, "a refused datagram counted", func() bool {
		c.Write([]byte("query"))
		return td.d.Status().Services[0].Counters.Refused >= 1
	})
	if st := td.d.Status().Services[0].Counters; st.NoBackend < st.Refused {
		t.Errorf("got no_backend %d below refused %d, want refused a part of no_backend", st.NoBackend, st.Refused)
	}
}
