package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// notifySocket stands in for systemd's $NOTIFY_SOCKET: it collects the
// notifications fulcrum sends, counting the watchdog keep-alives apart.
type notifySocket struct {
	path      string
	msgs      chan string
	watchdogs atomic.Int32
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	s := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock"), msgs: make(chan string, 64)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if m := string(buf[:n]); m == "WATCHDOG=1" {
				s.watchdogs.Add(1)
			} else {
				s.msgs <- m
			}
		}
	}()
	return s
}

// next returns the next notification other than a keep-alive.
func (s *notifySocket) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no notification within 15s")
		return ""
	}
}

func expectLines(t *testing.T, got string, prefixes ...string) {
	t.Helper()
	lines := strings.Split(got, "\n")
	if len(lines) != len(prefixes) {
		t.Fatalf("notification %q: got %d lines, want %d starting %q", got, len(lines), len(prefixes), prefixes)
	}
	for i, p := range prefixes {
		if !strings.HasPrefix(lines[i], p) {
			t.Fatalf("notification %q: line %d is %q, want it to start with %q", got, i+1, lines[i], p)
		}
	}
}

// TestSystemdNotify runs fulcrum as systemd's Type=notify would: READY=1
// once it serves, RELOADING=1 and READY=1 around every SIGHUP reload
// (successful or not), WATCHDOG=1 keep-alives and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	sock := listenNotify(t)
	backend := startTCPBackend(t, "b1")
	listen := freeAddr(t, "tcp")
	envDump := filepath.Join(t.TempDir(), "check-env")
	cfg := fmt.Sprintf(`admin: { listen: ADMIN }
services:
  - name: web
    listen: %s
    health: { type: exec, command: [sh, -c, 'env > %s'], interval: 100ms }
    backends: [ { address: %s } ]
`, listen, envDump, backend.addr)
	n := startNodeEnv(t, cfg, []string{"NOTIFY_SOCKET=" + sock.path, "WATCHDOG_USEC=400000"})

	ready := sock.next(t)
	expectLines(t, ready, "READY=1", "STATUS=serving 1 services, config hash ")
	if got, err := ask(listen); err != nil || got != "b1" {
		t.Fatalf("after READY=1: got %q, %v; want an answer from b1", got, err)
	}

	second := freeAddr(t, "tcp")
	n.reload(cfg + fmt.Sprintf(`  - name: web2
    listen: %s
    backends: [ { address: %s } ]
`, second, backend.addr))
	expectLines(t, sock.next(t), "RELOADING=1", "MONOTONIC_USEC=", "STATUS=reloading ")
	expectLines(t, sock.next(t), "READY=1", "STATUS=serving 2 services, config hash ")

	if r := n.reload("services: [ { name: broken } ]\n"); r.Failed != 1 {
		t.Fatalf("reload of a bad config: got %+v, want 1 failed", r)
	}
	expectLines(t, sock.next(t), "RELOADING=1", "MONOTONIC_USEC=", "STATUS=reloading ")
	expectLines(t, sock.next(t), "READY=1", "STATUS=reload failed, running the previous config (")

	deadline := time.Now().Add(15 * time.Second)
	for sock.watchdogs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := sock.watchdogs.Load(); got < 2 {
		t.Errorf("WATCHDOG=1 keep-alives with WatchdogSec=400ms: got %d, want at least 2", got)
	}

	env, err := os.ReadFile(envDump)
	if err != nil {
		t.Fatalf("the exec check never ran: %v", err)
	}
	for _, k := range []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC="} {
		if strings.Contains(string(env), k) {
			t.Errorf("a health check command inherited %s...; it could speak for fulcrum", k)
		}
	}

	n.signal(syscall.SIGTERM)
	expectLines(t, sock.next(t), "STOPPING=1", "STATUS=stopping")
	if err := n.waitExit(40 * time.Second); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
}
