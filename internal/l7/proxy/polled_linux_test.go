//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/l7/poller"
)

// testPoller starts a poller for one test.
func testPoller(t *testing.T) *poller.Poller {
	t.Helper()
	pl, err := poller.Start(testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	return pl
}

// polledPair returns a loopback connection whose reads go through the
// poller, and its peer.
func polledPair(t *testing.T) (*timedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := &timedConn{nc: nc}
	tc.usePoller(testPoller(t))
	if tc.w == nil {
		t.Fatal("the poller is not available")
	}
	t.Cleanup(func() {
		nc.Close()
		tc.releasePoller()
		peer.Close()
	})
	return tc, peer
}

// readAsync reads once from tc in a goroutine.
func readAsync(tc *timedConn, b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := tc.Read(b)
		done <- err
	}()
	return done
}

func waitRead(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("the read still waits after %v", within)
		return nil
	}
}

func TestPollerWakesReaderOnData(t *testing.T) {
	tc, peer := polledPair(t)
	b := make([]byte, 16)
	done := readAsync(tc, b)
	select {
	case err := <-done:
		t.Fatalf("read returned before any data: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	peer.Write([]byte("hello"))
	if err := waitRead(t, done, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if string(b[:5]) != "hello" {
		t.Fatalf("read %q", b[:5])
	}
}

func TestPollerReadsWhatIsThere(t *testing.T) {
	tc, peer := polledPair(t)
	peer.Write([]byte("ready"))
	time.Sleep(20 * time.Millisecond)
	b := make([]byte, 16)
	n, err := tc.Read(b)
	if err != nil || string(b[:n]) != "ready" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
}

func TestPollerEOF(t *testing.T) {
	tc, peer := polledPair(t)
	done := readAsync(tc, make([]byte, 16))
	time.Sleep(20 * time.Millisecond)
	peer.Close()
	if err := waitRead(t, done, 5*time.Second); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestPollerReadDeadline(t *testing.T) {
	tc, _ := polledPair(t)
	tc.readTimeout(80 * time.Millisecond)
	start := time.Now()
	done := readAsync(tc, make([]byte, 16))
	err := waitRead(t, done, 5*time.Second)
	if !isTimeout(err) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("timed out after %v, before the deadline", d)
	}
}

func TestPollerCloseWakesReader(t *testing.T) {
	tc, _ := polledPair(t)
	done := readAsync(tc, make([]byte, 16))
	time.Sleep(20 * time.Millisecond)
	// As Shutdown does: close from another goroutine, then wake.
	tc.nc.Close()
	tc.wakeReader()
	err := waitRead(t, done, 5*time.Second)
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
}

func TestPollerStopPolling(t *testing.T) {
	tc, peer := polledPair(t)
	tc.stopPolling()
	if tc.w != nil {
		t.Fatal("still polled")
	}
	// Go's netpoller again: a deadline set on the socket ends the read.
	tc.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := tc.Read(make([]byte, 4)); !isTimeout(err) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	tc.nc.SetReadDeadline(time.Time{})
	peer.Write([]byte("x"))
	if n, err := tc.Read(make([]byte, 4)); n != 1 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
}

// TestPollerManyConnections runs request/response rounds on many polled
// connections at once: every read is woken, none twice for one message.
func TestPollerManyConnections(t *testing.T) {
	const conns, rounds = 100, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		tc, peer := polledPair(t)
		wg.Add(2)
		go func() { // echo side, reading through the poller
			defer wg.Done()
			b := make([]byte, 64)
			for range rounds {
				n, err := tc.Read(b)
				if err != nil {
					errs <- err
					return
				}
				if _, err := tc.nc.Write(b[:n]); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			b := make([]byte, 64)
			peer.SetDeadline(time.Now().Add(20 * time.Second))
			for i := range rounds {
				msg := []byte{byte(i)}
				if _, err := peer.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(peer, b[:1]); err != nil || b[0] != byte(i) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
