package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen opens a unixgram socket standing in for systemd's.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// The tests set process environment variables, so they do not run in
// parallel.

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, tt := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@fulcrum-sdnotify-test-%d", os.Getpid())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := listen(t, tt.socket)
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			n, err := New()
			if err != nil || n == nil {
				t.Fatalf("New: got %v, %v; want a notifier", n, err)
			}
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Errorf("NOTIFY_SOCKET still set to %q; children would inherit it", v)
			}
			if err := n.Ready("serving 2 services\nconfig abc"); err != nil {
				t.Fatal(err)
			}
			if got, want := recv(t, c), "READY=1\nSTATUS=serving 2 services; config abc"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if err := n.Reloading("reloading"); err != nil {
				t.Fatal(err)
			}
			got := recv(t, c)
			lines := strings.Split(got, "\n")
			if len(lines) != 3 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading" {
				t.Errorf("got %q, want RELOADING=1, MONOTONIC_USEC=..., STATUS=reloading", got)
			}
			var usec int64
			if _, err := fmt.Sscanf(lines[1], "MONOTONIC_USEC=%d", &usec); err != nil || usec <= 0 {
				t.Errorf("MONOTONIC_USEC: got %q, want a positive integer", lines[1])
			}
			if err := n.Stopping("draining"); err != nil {
				t.Fatal(err)
			}
			if got, want := recv(t, c), "STOPPING=1\nSTATUS=draining"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	n, err := New()
	if n != nil || err != nil {
		t.Fatalf("New without NOTIFY_SOCKET: got %v, %v; want nil, nil", n, err)
	}
	// A nil notifier is usable.
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready on nil: %v", err)
	}
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("WatchdogInterval on nil: got %v, want 0", d)
	}
	n.RunWatchdog(context.Background(), func(context.Context) error { return nil }) // returns at once
}

func TestNotifyBadEnvironment(t *testing.T) {
	for _, tt := range []struct{ name, socket, usec, want string }{
		{"relative socket", "notify.sock", "", "absolute path"},
		{"vsock", "vsock:2:1234", "", "absolute path"},
		{"bad watchdog", "/run/x.sock", "soon", "WATCHDOG_USEC"},
		{"zero watchdog", "/run/x.sock", "0", "WATCHDOG_USEC"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			_, err := New()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNotifyNoListener(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone.sock"))
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready("x"); err == nil {
		t.Error("Ready to a missing socket: got nil error, want one")
	}
	if err := n.Send("READY"); err == nil {
		t.Error("Send of a line without '=': got nil error, want one")
	}
}

func TestWatchdog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	c := listen(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "1") // another process's watchdog: not ours
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if d := n.WatchdogInterval(); d != 0 {
		t.Fatalf("watchdog for WATCHDOG_PID=1: got %v, want 0", d)
	}

	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	if n, err = New(); err != nil {
		t.Fatal(err)
	}
	if got, want := n.WatchdogInterval(), 100*time.Millisecond; got != want {
		t.Fatalf("WatchdogInterval: got %v, want %v", got, want)
	}
	var healthy atomic.Bool
	healthy.Store(true)
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, func(context.Context) error {
			calls.Add(1)
			if healthy.Load() {
				return nil
			}
			return errors.New("stuck")
		})
	}()
	for range 3 {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	// A stuck daemon gets no keep-alives.
	healthy.Store(false)
	time.Sleep(100 * time.Millisecond) // let a ping already sent arrive
	drain(c)
	before := calls.Load()
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Read(make([]byte, 64)); err == nil {
		t.Error("got a keep-alive while alive fails, want none")
	}
	if calls.Load() <= before {
		t.Error("alive was not asked again while stuck")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not return after cancel")
	}
}

func drain(c *net.UnixConn) {
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
