//go:build linux

package poller

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// waitFor bounds every wait: generous for a loaded machine running -race,
// never reached when the code is right.
const waitFor = 10 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := Start(quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
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
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		peer.Close()
	})
	return c.(*net.TCPConn), peer.(*net.TCPConn)
}

// reader reads a socket the way the HTTP engine does: forget the
// notifications, read without blocking, wait on the poller when there is
// nothing; once the poller stopped, through Go's netpoller.
type reader struct {
	c  *net.TCPConn
	rc syscall.RawConn
	w  *Waiter
}

func newReader(t *testing.T, p *Poller, c *net.TCPConn) *reader {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w, err := p.Register(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &reader{c: c, rc: rc, w: w}
}

func (r *reader) read(b []byte) (int, error) {
	for r.w != nil {
		r.w.Reset()
		var n int
		var err error
		if cerr := r.rc.Read(func(fd uintptr) bool {
			n, err = syscall.Read(int(fd), b)
			return true
		}); cerr != nil {
			return 0, cerr
		}
		if err == syscall.EAGAIN {
			if !r.w.Wait() {
				r.w.Release()
				r.w = nil
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
	return r.c.Read(b)
}

// parked waits until w's goroutine waits.
func parked(t *testing.T, w *Waiter) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for w.state.Load() != waiterParked {
		if time.Now().After(deadline) {
			t.Fatal("the reader never waited")
		}
		time.Sleep(time.Millisecond)
	}
}

func readAsync(r *reader, b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := r.read(b)
		done <- err
	}()
	return done
}

func TestWakesOnData(t *testing.T) {
	t.Parallel()
	p := startPoller(t)
	c, peer := pair(t)
	r := newReader(t, p, c)
	b := make([]byte, 8)
	done := readAsync(r, b)
	parked(t, r.w)
	peer.Write([]byte("hello"))
	select {
	case err := <-done:
		if err != nil || string(b[:5]) != "hello" {
			t.Fatalf("read %q, %v", b[:5], err)
		}
	case <-time.After(waitFor):
		t.Fatal("the reader was not woken")
	}
	if st := p.Stats(); st.Sockets != 1 || st.Wakeups == 0 {
		t.Errorf("stats: got %+v, want 1 socket and a wake-up", st)
	}
	r.w.Release()
	if st := p.Stats(); st.Sockets != 0 {
		t.Errorf("after Release: got %d sockets, want 0", st.Sockets)
	}
}

// TestCloseWakesWaiters: Close wakes a goroutine that waits, which then
// reads through Go's netpoller; later registrations fail.
func TestCloseWakesWaiters(t *testing.T) {
	t.Parallel()
	p, err := Start(quiet())
	if err != nil {
		t.Fatal(err)
	}
	c, peer := pair(t)
	r := newReader(t, p, c)
	b := make([]byte, 8)
	done := readAsync(r, b)
	parked(t, r.w)
	p.Close()
	p.Close() // idempotent
	if !errors.Is(p.Err(), ErrClosed) {
		t.Errorf("Err: got %v, want ErrClosed", p.Err())
	}
	// The reader left the poller and reads in Go's netpoller: data wakes it.
	peer.Write([]byte("after"))
	select {
	case err := <-done:
		if err != nil || string(b[:5]) != "after" {
			t.Fatalf("read %q, %v", b[:5], err)
		}
	case <-time.After(waitFor):
		t.Fatal("the reader still waits after Close")
	}
	c2, _ := pair(t)
	rc, _ := c2.SyscallConn()
	if _, err := p.Register(rc); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: got %v, want ErrClosed", err)
	}
}

// TestEpollFailureStopsPoller: when epoll fails the poller says so in the
// log and in Err, and wakes its waiters to read through Go's netpoller.
func TestEpollFailureStopsPoller(t *testing.T) {
	t.Parallel()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	fail := make(chan struct{})
	p, err := start(log, func(epfd int, ev []unix.EpollEvent, msec int) (int, error) {
		select {
		case <-fail:
			return 0, unix.EBADF
		default:
			return unix.EpollWait(epfd, ev, msec)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, peer := pair(t)
	r := newReader(t, p, c)
	b := make([]byte, 8)
	done := readAsync(r, b)
	parked(t, r.w)
	close(fail)
	peer.Write([]byte("x")) // an edge makes a sleeping poller poll
	select {
	case err := <-done:
		if err != nil || b[0] != 'x' {
			t.Fatalf("read %q, %v", b[:1], err)
		}
	case <-time.After(waitFor):
		t.Fatal("the reader still waits after epoll failed")
	}
	select {
	case <-p.done:
	case <-time.After(waitFor):
		t.Fatal("the poller's goroutine did not end")
	}
	if err := p.Err(); err == nil || !errors.Is(err, unix.EBADF) {
		t.Errorf("Err: got %v, want epoll's EBADF", err)
	}
	got := logs.String()
	if !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "HTTP poller failed") || !strings.Contains(got, "bad file descriptor") {
		t.Errorf("log: got %q, want an ERROR line naming the failure", got)
	}
}

// TestNotifyNeverBlocks: notifications pile up on a waiter nobody waits
// on, from many goroutines, and on one whose channel already holds a
// token: none blocks, and the next wait returns at once.
func TestNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	p := startPoller(t)
	c, _ := pair(t)
	r := newReader(t, p, c)
	r.w.wake <- struct{}{} // a token nobody takes
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 1000 {
				r.w.Notify()
				r.w.wakeUp()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Notify blocked")
	}
	waited := make(chan bool, 1)
	go func() { waited <- r.w.Wait() }()
	select {
	case ok := <-waited:
		if !ok {
			t.Error("Wait reported a stopped poller")
		}
	case <-time.After(waitFor):
		t.Fatal("Wait blocked although notified")
	}
}

// TestDeadlineWakes: the timer of SetDeadline wakes a waiter.
func TestDeadlineWakes(t *testing.T) {
	t.Parallel()
	p := startPoller(t)
	c, _ := pair(t)
	r := newReader(t, p, c)
	r.w.SetDeadline(time.Now().Add(30 * time.Millisecond))
	waited := make(chan bool, 1)
	go func() { waited <- r.w.Wait() }()
	select {
	case <-waited:
	case <-time.After(waitFor):
		t.Fatal("the deadline did not wake the waiter")
	}
	r.w.SetDeadline(time.Time{})
}

// TestReusesSlots: released registrations are reused, and a stale
// notification of a reused slot only costs a spurious wake-up.
func TestReusesSlots(t *testing.T) {
	t.Parallel()
	p := startPoller(t)
	c, _ := pair(t)
	r := newReader(t, p, c)
	idx := r.w.idx
	c.Close()
	r.w.Release()
	c2, peer2 := pair(t)
	r2 := newReader(t, p, c2)
	if r2.w.idx != idx {
		t.Fatalf("slot %d not reused: got %d", idx, r2.w.idx)
	}
	r2.w.Notify() // stale: nobody waits; the next wait returns at once
	b := make([]byte, 4)
	done := readAsync(r2, b)
	peer2.Write([]byte("y"))
	select {
	case err := <-done:
		if err != nil || b[0] != 'y' {
			t.Fatalf("read %q, %v", b[:1], err)
		}
	case <-time.After(waitFor):
		t.Fatal("the reader was not woken")
	}
}

// TestStress runs, under -race, many goroutines reading through the
// poller while others notify them (as closes and timers do), while they
// leave and re-register their sockets, and while the poller is closed
// under them: every byte arrives, in order, and nobody hangs. Bounded:
// 48 connections × 200 messages, within waitFor.
func TestStress(t *testing.T) {
	t.Parallel()
	const conns, msgs = 48, 200
	p, err := Start(quiet())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		waiters []*Waiter // registered now, for the notifiers
	)
	track := func(w *Waiter, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			waiters = append(waiters, w)
			return
		}
		for i, x := range waiters {
			if x == w {
				waiters = append(waiters[:i], waiters[i+1:]...)
				return
			}
		}
	}
	stop := make(chan struct{})
	var noise sync.WaitGroup
	for range 4 {
		noise.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				var w *Waiter
				if len(waiters) > 0 {
					w = waiters[rand.IntN(len(waiters))]
				}
				mu.Unlock()
				if w != nil {
					w.Notify()
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
	}

	errs := make(chan error, 2*conns)
	var readers, writers sync.WaitGroup
	for i := range conns {
		c, peer := pair(t)
		c.SetDeadline(time.Now().Add(waitFor))
		peer.SetDeadline(time.Now().Add(waitFor))
		r := newReader(t, p, c)
		track(r.w, true)
		readers.Go(func() {
			b := make([]byte, 64)
			next := byte(0)
			for got := 0; got < msgs; {
				n, err := r.read(b)
				if err != nil {
					errs <- err
					return
				}
				for _, x := range b[:n] {
					if x != next {
						errs <- errors.New("bytes out of order")
						return
					}
					next++
				}
				got += n
				// Every so often leave the poller and come back, as a
				// tunnel or a pooled connection's next owner would.
				if r.w != nil && rand.IntN(8) == 0 {
					track(r.w, false)
					r.w.Detach(r.rc)
					w, err := p.Register(r.rc)
					if err != nil {
						r.w = nil // closed meanwhile: Go's netpoller
						continue
					}
					r.w = w
					track(w, true)
				}
				if r.w != nil && rand.IntN(16) == 0 {
					r.w.SetDeadline(time.Now().Add(time.Duration(rand.IntN(200)) * time.Microsecond))
				}
			}
			if r.w != nil {
				track(r.w, false)
				r.w.SetDeadline(time.Time{})
				r.w.Release()
			}
		})
		writers.Go(func() {
			for k := range msgs {
				if _, err := peer.Write([]byte{byte(k)}); err != nil {
					errs <- err
					return
				}
				if k%16 == 0 {
					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				}
				// A third of the connections see the poller closed under
				// them, half-way.
				if i%3 == 0 && k == msgs/2 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	// Close the poller while the slow third still sends.
	time.Sleep(5 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	finished := make(chan struct{})
	go func() {
		readers.Wait()
		writers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(waitFor + time.Second):
		t.Fatal("readers or writers still busy: a wake-up was lost")
	}
	close(stop)
	noise.Wait()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
