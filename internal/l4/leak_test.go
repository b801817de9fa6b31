package l4

import (
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLeaks runs 1000 connections against a dead backend and 1000
// complete connections, then expects the goroutine and descriptor counts
// back at their baseline.
//
// Not parallel: both counts are process-wide, and parallel tests are
// paused while it runs.
func TestLeaks(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	const (
		n       = 1000
		workers = 8
		slack   = 2 // goroutines and descriptors the runtime may hold briefly
	)
	s := spec()
	s.IdleTimeout = time.Minute // run the idle watch on every connection too
	s.Retries = 0
	deadSvc, _ := newService(t, s, nil, deadAddr(t))
	deadProxy, deadListen := startTCP(t, "tcp4", deadSvc)
	liveSvc, bs := newService(t, s, nil, startBackend(t, "tcp4", echo).addr)
	liveProxy, liveListen := startTCP(t, "tcp4", liveSvc)

	refused := func() error {
		c, err := net.DialTimeout("tcp4", deadListen, waitFor)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		_, err = c.Read(make([]byte, 1))
		if err == io.EOF {
			return nil
		}
		return err
	}
	served := func() error {
		c, err := net.DialTimeout("tcp4", liveListen, waitFor)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err = io.ReadFull(c, make([]byte, 4))
		return err
	}
	settle := func() {
		eventually(t, "idle", func() bool {
			return deadProxy.Active() == 0 && liveProxy.Active() == 0 && bs[0].Active() == 0
		})
	}

	// Warm up what is created once per process (splice pipe pool, timers).
	for range workers {
		if err := refused(); err != nil {
			t.Fatal(err)
		}
		if err := served(); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	// A collection would close leaked sockets through their finalizers and
	// hide the leak; the few megabytes the run allocates can wait.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < 2*n; i += workers {
				f := served
				if i%2 == 0 {
					f = refused
				}
				if err := f(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("connection failed: %v", err)
	}
	settle()
	if got := deadProxy.Stats().NoBackend; got != n+workers {
		t.Errorf("dead backend: NoBackend got %d, want %d", got, n+workers)
	}

	var g, fds int
	deadline := time.Now().Add(waitFor)
	for {
		g, fds = runtime.NumGoroutine(), openFDs(t)
		if g <= baseG+slack && fds <= baseFD+slack || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g > baseG+slack {
		t.Errorf("goroutines: got %d, want at most %d (baseline %d)", g, baseG+slack, baseG)
	}
	if fds > baseFD+slack {
		t.Errorf("open descriptors: got %d, want at most %d (baseline %d)", fds, baseFD+slack, baseFD)
	}
}

// openFDs counts the open descriptors except pipes: splice keeps spare
// pipes in a pool that only the garbage collector empties.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}
