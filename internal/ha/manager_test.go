package ha

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// loneConn is the VRRP socket of a node alone on its link: it hears
// nothing.
type loneConn struct {
	once sync.Once
	in   chan vrrp.Packet
}

func (c *loneConn) Send(vrrp.Advert) error                        { return nil }
func (c *loneConn) Receive() <-chan vrrp.Packet                   { return c.in }
func (c *loneConn) Close() error                                  { c.once.Do(func() { close(c.in) }); return nil }
func (nopAnnouncer) Acquire(context.Context, []netip.Addr) error  { return nil }
func (nopAnnouncer) Release(context.Context, []netip.Addr) error  { return nil }
func (nopAnnouncer) Announce(context.Context, []netip.Addr) error { return nil }

type nopAnnouncer struct{}

// fakeHost answers ServiceAlive from alive, by service name.
type fakeHost struct {
	mu    sync.Mutex
	alive map[string]bool
}

func (h *fakeHost) ServiceAlive(name string) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.alive[name] {
		return true, ""
	}
	return false, "no available backend"
}
func (h *fakeHost) Busy([]netip.Prefix) bool          { return false }
func (h *fakeHost) SetReleasing([]netip.Prefix, bool) {}
func (h *fakeHost) PreemptHold([]netip.Prefix) string { return "" }

type nopAlerts struct{}

func (nopAlerts) Notify(alert.Event) {}

// startManager runs the groups of yaml on a lone node with fake
// privileged pieces.
func startManager(t *testing.T, yaml string, host Host) *Manager {
	t.Helper()
	return startManagerOn(t, yaml, host, func() vrrp.Conn { return &loneConn{in: make(chan vrrp.Packet)} })
}

// startManagerOn is startManager with the groups' VRRP sockets from conn.
func startManagerOn(t *testing.T, yaml string, host Host, conn func() vrrp.Conn) *Manager {
	t.Helper()
	cfg, err := config.Parse("ha.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{
		Host:   host,
		Alerts: nopAlerts{},
		Log:    slog.New(slog.DiscardHandler),
		Deps: Deps{
			Listen:      func(vrrp.ConnOptions) (vrrp.Conn, error) { return conn(), nil },
			PrimaryAddr: func(string, vrrp.Family) (netip.Addr, error) { return netip.MustParseAddr("192.0.2.1"), nil },
			Announcer:   func(*config.HAGroup, *slog.Logger) (vrrp.Announcer, error) { return nopAnnouncer{}, nil },
			LinkUp:      func(string) (bool, error) { return true, nil },
		},
	})
	p, err := m.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	t.Cleanup(m.Stop)
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotifyScriptLeavingAChildDoesNotBlock: a notify script that starts
// a background child holding its stdout (a daemon started the lazy way)
// delays neither its own run beyond the runner's grace nor the next
// transitions' runs, and no transition is dropped.
func TestNotifyScriptLeavingAChildDoesNotBlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	states, pids := filepath.Join(dir, "states"), filepath.Join(dir, "pids")
	script := filepath.Join(dir, "notify.sh")
	body := fmt.Sprintf("#!/bin/sh\necho \"$FULCRUM_STATE\" >> %s\nsleep 60 &\necho $! >> %s\n", states, pids)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	m := startManager(t, fmt.Sprintf(`node: { name: lb1 }
services: [ { name: web, listen: 127.0.0.1:1, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  groups:
    - { name: web, interface: eth0, vrid: 51, vips: [192.0.2.100], priority: { lb1: 150 }, advert_interval: 50ms, initdead: 0s, notify: [%s] }
`, script), &fakeHost{})
	read := func() []string {
		b, _ := os.ReadFile(states)
		return strings.Fields(string(b))
	}
	waitFor(t, "master", func() bool { return len(m.Status()) == 1 && m.Status()[0].State == "master" })
	start := time.Now()
	if err := m.Release(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	// backup (start), master, backup (release): each notify returns
	// while its child still holds the pipe.
	want := []string{"backup", "master", "backup"}
	deadline := time.Now().Add(5 * time.Second)
	for got := read(); len(got) < len(want); got = read() {
		if time.Now().After(deadline) {
			t.Fatalf("notify runs after %v: %q, want %q: a run waits on its child's pipe", time.Since(start), got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := read(); strings.Join(got[:3], " ") != strings.Join(want, " ") {
		t.Errorf("notify states: got %q, want %q first", got, want)
	}
}

// TestTrackScriptTimeoutKillsItsChildren: a track script that hangs is
// cut at its timeout, with what it started, and counts as failed.
func TestTrackScriptTimeoutKillsItsChildren(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "track.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nsleep 60 &\necho $! > %s\nwait\n", pidFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, detail := runTrackScript(t.Context(), config.TrackScript{Command: []string{script}, Timeout: config.Duration(300 * time.Millisecond)})
	if ok || !strings.Contains(detail, "timeout") {
		t.Errorf("hanging track script: ok %v detail %q, want a timeout", ok, detail)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("track script with a 300ms timeout returned after %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// A killed child of an exited shell is reaped by init: signal 0
	// then finds no process.
	waitFor(t, "the script's child killed", func() bool { return syscall.Kill(pid, 0) != nil })
}
