package daemon

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// holdBackend accepts connections and hands each to the test, which
// holds it open: a backend with a connection in flight.
func holdBackend(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			conns <- c
		}
	}()
	return ln.Addr().String(), conns
}

// TestEvictionClosesConnectionsForEveryFrontend pins one rule for a
// service that is not quiescent: whatever takes a backend out — a runtime
// removal, maintenance, a failed health check — its established
// connections are closed once removal_grace has passed, on TCP and HTTP
// services alike.
func TestEvictionClosesConnectionsForEveryFrontend(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	for _, protocol := range []string{"tcp", "http"} {
		for _, how := range []string{"remove", "maint", "health"} {
			t.Run(protocol+"/"+how, func(t *testing.T) {
				t.Parallel()
				held, conns := holdBackend(t)
				healthLn, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer healthLn.Close()
				healthPort := healthLn.Addr().(*net.TCPAddr).Port
				spare := echoBackend(t, "spare")
				if protocol == "http" {
					spare = httpBackend(t, "spare")
				}
				web := freeTCP(t)
				td := startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: web
    listen: %s
    protocol: %s
    quiescent: false
    removal_grace: %s
    health: { type: tcp, interval: 50ms, timeout: 1s, fall: 1, rise: 1 }
    backends:
      - { address: %s, health: { port: %d } }
      - { address: %s, backup: true }
`, web, protocol, grace, held, healthPort, spare))
				c := dialClient(t, web)
				// A request the held backend never answers.
				if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				var up net.Conn
				select {
				case up = <-conns:
				case <-time.After(10 * time.Second):
					t.Fatal("the held backend got no connection")
				}
				start := time.Now()
				switch how {
				case "remove":
					if _, err := td.d.RemoveBackend(ctx(t), "web", held); err != nil {
						t.Fatal(err)
					}
				case "maint":
					if _, err := td.d.SetAdminState(ctx(t), "web", held, "maint"); err != nil {
						t.Fatal(err)
					}
				case "health":
					healthLn.Close()
				}
				up.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = io.Copy(io.Discard, up)
				if err != nil {
					t.Fatalf("the backend's connection was not closed: %v", err)
				}
				if d := time.Since(start); d < grace {
					t.Errorf("connection closed %v after the backend left, before removal_grace %v", d, grace)
				}
			})
		}
	}
}
