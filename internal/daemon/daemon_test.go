package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
)

// testDaemon runs a daemon whose config is whatever set() stored last.
type testDaemon struct {
	t    *testing.T
	d    *Daemon
	mu   sync.Mutex
	yaml string
	// stopOnce stops the daemon and waits for Run (at cleanup, or
	// earlier by stop).
	stopOnce func()
}

// stop stops the daemon and waits until Run returned.
func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	td.stopOnce()
}

func startDaemon(t *testing.T, yaml string) *testDaemon {
	t.Helper()
	return startDaemonWith(t, yaml, ha.Deps{})
}

// startDaemonWith runs a daemon whose HA pieces are deps.
func startDaemonWith(t *testing.T, yaml string, deps ha.Deps) *testDaemon {
	t.Helper()
	return startDaemonLog(t, yaml, deps, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startDaemonLog is startDaemonWith logging to log.
func startDaemonLog(t *testing.T, yaml string, deps ha.Deps, log *slog.Logger) *testDaemon {
	t.Helper()
	return startDaemonOpts(t, yaml, Options{Log: log, HA: deps})
}

// startDaemonOpts runs a daemon with opt, its config loaded from yaml.
func startDaemonOpts(t *testing.T, yaml string, opt Options) *testDaemon {
	t.Helper()
	td := &testDaemon{t: t, yaml: yaml}
	ready := make(chan struct{})
	opt.Load = func() (*config.Config, error) {
		td.mu.Lock()
		defer td.mu.Unlock()
		cfg, err := config.Parse("test.yaml", []byte(td.yaml))
		if err != nil {
			return nil, err
		}
		return cfg, Plan(cfg)
	}
	opt.Ready = func() { close(ready) }
	td.d = New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- td.d.Run(ctx, nil) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	td.stopOnce = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(td.stopOnce)
	return td
}

func (td *testDaemon) reload(yaml string) error {
	td.mu.Lock()
	td.yaml = yaml
	td.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return td.d.Reload(ctx)
}

func echoBackend(t *testing.T, name string) string {
	t.Helper()
	return echoListener(t, name).Addr().String()
}

// echoListener answers each line with name:line until it is closed (at
// cleanup, or earlier by the test).
func echoListener(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serveEcho(ln, name)
	return ln
}

// serveEcho answers each line on ln's connections with name:line until ln
// is closed.
func serveEcho(ln net.Listener, name string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, name+":"+line)
				}
			}()
		}
	}()
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hi\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ask %s: %v", addr, err)
	}
	return strings.TrimSuffix(line, ":hi\n")
}

// freeTCP is a loopback address reserved for the test (package freeport).
func freeTCP(t *testing.T) string { return freeport.TCP(t) }

func svcYAML(name, listen string, backends ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    listen: %s\n    scheduler: rr\n    backends:\n", name, listen)
	for _, a := range backends {
		fmt.Fprintf(&b, "      - { address: %s }\n", a)
	}
	return b.String()
}

func TestReloadKeepsListenerAndCounters(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	web := freeTCP(t)
	td := startDaemon(t, "admin: { listen: \"off\" }\nservices:\n"+svcYAML("web", web, b1))
	if got := ask(t, web); got != "b1" {
		t.Fatalf("got %s, want b1", got)
	}
	if err := td.reload("admin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, b1, b2)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	seen := map[string]bool{}
	for range 4 {
		seen[ask(t, web)] = true
	}
	if !seen["b1"] || !seen["b2"] {
		t.Fatalf("after reload: got %v, want both backends", seen)
	}
	st := td.d.Status()
	if got := st.Services[0].Counters.Accepted; got != 5 {
		t.Errorf("accepted across reload: got %d, want 5 (the listener and its counters are kept)", got)
	}
	var total uint64
	for _, b := range st.Services[0].Backends {
		if b.Address == b1 {
			total = b.Total
		}
	}
	if total != 3 {
		t.Errorf("b1 total across reload: got %d, want 3", total)
	}
}

func TestReloadRejectedLeavesRunningConfig(t *testing.T) {
	t.Parallel()
	b1 := echoBackend(t, "b1")
	web := freeTCP(t)
	// Another process holds this address: binding it must fail.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := "admin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, b1)
	td := startDaemon(t, base)
	before := td.d.Status().ConfigHash

	for name, yaml := range map[string]string{
		"bind conflict": base + svcYAML("other", busy.Addr().String(), b1),
		"invalid":       base + "  - name: broken\n    listen: nowhere\n    backends: []\n",
		"tcp to http":   "admin: { listen: \"off\" }\nservices:\n" + strings.Replace(svcYAML("web", web, b1), "scheduler: rr", "protocol: http", 1),
	} {
		if err := td.reload(yaml); err == nil {
			t.Errorf("%s: reload accepted, want rejected", name)
		}
	}
	st := td.d.Status()
	if st.ConfigHash != before || len(st.Services) != 1 {
		t.Errorf("after rejected reloads: got hash %s and %d services, want the old config", st.ConfigHash, len(st.Services))
	}
	if st.Reloads.Failed != 3 || st.Reloads.OK != 0 {
		t.Errorf("reload counters: got %+v, want 3 failed", st.Reloads)
	}
	if got := ask(t, web); got != "b1" {
		t.Errorf("service after rejected reloads: got %s, want b1", got)
	}
}

func TestReloadRemovesAndAddsListeners(t *testing.T) {
	t.Parallel()
	b1 := echoBackend(t, "b1")
	a, b := freeTCP(t), freeTCP(t)
	td := startDaemon(t, "admin: { listen: \"off\" }\nservices:\n"+svcYAML("a", a, b1))
	if err := td.reload("admin: { listen: \"off\" }\nservices:\n" + svcYAML("b", b, b1)); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, b); got != "b1" {
		t.Fatalf("new listener: got %s, want b1", got)
	}
	if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		c.Close()
		t.Fatalf("removed listener %s still accepts", a)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	b1 := echoBackend(t, "b1")
	web := freeTCP(t)
	want := freeTCP(t)
	td := startDaemon(t, "admin: { listen: "+want+" }\nservices:\n"+svcYAML("web", web, b1))
	addr := td.d.AdminAddr()
	if addr != want {
		t.Fatalf("AdminAddr: got %q, want %q", addr, want)
	}
	ask(t, web)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/status HTTP/1.0\r\n\r\n")
	body, _ := io.ReadAll(c)
	for _, want := range []string{`"name": "web"`, `"address": "` + b1 + `"`, `"total": 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("status lacks %s:\n%s", want, body)
		}
	}
}

// A backend that fails its checks loses its established connections after
// removal_grace when the service is not quiescent, and keeps them when it
// is.
func TestDownBackendRemovalAndQuiescence(t *testing.T) {
	t.Parallel()
	for _, quiescent := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiescent=%v", quiescent), func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			backend := ln.Addr().String()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go io.Copy(c, c) // echo, and the connection outlives the listener
				}
			}()
			web := freeTCP(t)
			startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
shutdown: { drain_timeout: 100ms }
services:
  - name: web
    listen: %s
    quiescent: %v
    removal_grace: 200ms
    health: { type: tcp, interval: 50ms, timeout: 200ms, fall: 1, rise: 1 }
    backends: [ { address: %s } ]
`, web, quiescent, backend))
			c, err := net.DialTimeout("tcp", web, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			io.WriteString(c, "one\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatalf("echo before the backend fails: %v", err)
			}
			ln.Close() // checks now fail; the established connection still works at the backend

			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = r.ReadString('\n')
			closed := err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
			if !quiescent && !closed {
				t.Errorf("removal: connection not closed within 2s of the backend going down (err %v)", err)
			}
			if quiescent {
				if closed {
					t.Fatalf("quiescent: connection closed (%v), want it kept", err)
				}
				io.WriteString(c, "two\n")
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if line, err := r.ReadString('\n'); err != nil || line != "two\n" {
					t.Errorf("quiescent: echo after down: got %q %v", line, err)
				}
			}
		})
	}
}
