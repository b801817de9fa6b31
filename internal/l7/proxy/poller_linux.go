//go:build linux

package proxy

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The poller tells the goroutines of the HTTP/1.1 path when their sockets
// have something to read, in place of Go's netpoller, so that requests are
// served in the order they arrive.
//
// Go's scheduler looks at the netpoller only when it has nothing else to
// run, and then queues what it found in reverse order. Under load the run
// queue is never empty for long: the poller is consulted once per pass over
// every busy connection (about a millisecond at 64 connections on one
// core), the requests that arrived meanwhile wait for the whole pass, and
// the ones that arrived first are served last. HAProxy's event loop polls
// between short batches, in arrival order. Measured at 64 connections on
// one core (bench/l7): with Go's netpoller the latency's p90 was 1.6 ms
// against HAProxy's 1.3 ms and its p99 up to 1.5× HAProxy's; with this
// poller both are level with HAProxy's, at the same throughput.
//
// One goroutine owns an epoll instance holding every socket of the path
// (edge-triggered; the sockets stay in Go's netpoller too). It polls
// without blocking, wakes the goroutines waiting on the sockets it finds
// ready in that order, and yields, so that it polls again after every
// pass of the run queue. When a poll finds nothing and no goroutine has
// begun a wait since the last one, it sleeps, with the epoll descriptor
// in Go's netpoller, until one of the sockets has data again.
type poller struct {
	epfd int
	file *os.File        // epfd: kept referenced, or its finalizer closes it
	raw  syscall.RawConn // epfd in Go's netpoller, to sleep on
	// pollFn and napFn are poll and nap as values, made once: a method
	// value allocates.
	pollFn, napFn func(fd uintptr) bool
	napped        bool

	mu      sync.Mutex
	waiters []*waiter // by index, the data of the socket's epoll event
	free    []int32

	_ [64]byte // parks, written by every waiting goroutine, on a line of its own

	// parks counts the waits begun: while goroutines keep reaching their
	// next wait, the poller has company in the run queue and polls again
	// after them rather than sleep.
	parks atomic.Uint64

	events [128]unix.EpollEvent
	batch  []*waiter
}

// waiter states.
const (
	waiterRunning int32 = iota // its goroutine is not waiting
	waiterParked               // its goroutine waits on wake
	waiterReady                // notified while running: read again before waiting
)

// waiter is one socket's registration with the poller. One goroutine at a
// time reads the socket and waits on it; anybody may notify it.
type waiter struct {
	p     *poller
	idx   int32
	state atomic.Int32
	wake  chan struct{}
	// hup: the peer closed or reset its side, a condition a read may not
	// have reported yet although it drained the data.
	hup atomic.Bool

	// timer notifies the waiter when the socket's read deadline passes:
	// a read then fails with the deadline error, as with Go's netpoller.
	timer    *time.Timer
	deadline time.Time
}

var (
	thePoller     *poller
	thePollerOnce sync.Once
)

// newWaiter registers the socket of rc with the poller. It returns nil
// when the poller is not available, and the socket is then read through
// Go's netpoller as usual.
func newWaiter(rc syscall.RawConn) *waiter {
	thePollerOnce.Do(func() { thePoller = startPoller() })
	p := thePoller
	if p == nil {
		return nil
	}
	w := &waiter{p: p, wake: make(chan struct{}, 1)}
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		w.idx = p.free[n-1]
		p.free = p.free[:n-1]
		p.waiters[w.idx] = w
	} else {
		w.idx = int32(len(p.waiters))
		p.waiters = append(p.waiters, w)
	}
	p.mu.Unlock()
	var err error
	cerr := rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: w.idx}
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if cerr != nil || err != nil {
		w.release()
		return nil
	}
	return w
}

func startPoller() *poller {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	// Non-blocking, so that os.NewFile puts it in Go's netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "l7-poller")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &poller{epfd: fd, file: f, raw: raw}
	p.pollFn, p.napFn = p.poll, p.nap
	go p.run()
	return p
}

// Go's netpoller still serves the sockets not on the poller (listeners,
// TLS, writes that wait for room) and is consulted only when the run
// queue is empty, which it never is while the poller keeps polling. So
// after maxBusy of that the poller naps: it sleeps without polling first,
// the queue drains, and Go's netpoller runs and hands it the next edge of
// epfd along with whatever else is ready. Under load the next edge comes
// at once; napLimit bounds the nap when none comes (the events that
// arrived just before it made theirs already).
const (
	maxBusy  = time.Millisecond
	napLimit = 10 * time.Millisecond
)

func (p *poller) run() {
	var seen uint64
	busy := time.Now()
	for {
		if !p.poll(uintptr(p.epfd)) {
			if n := p.parks.Load(); n != seen {
				seen = n
			} else {
				// Sleeps until epfd is readable; p.poll then runs again.
				p.raw.Read(p.pollFn)
				busy = time.Now()
			}
		} else if time.Since(busy) > maxBusy {
			p.file.SetReadDeadline(time.Now().Add(napLimit))
			p.napped = false
			p.raw.Read(p.napFn)
			p.file.SetReadDeadline(time.Time{})
			busy = time.Now()
		}
		runtime.Gosched()
	}
}

// nap is the RawConn.Read callback of a nap: the first call only asks to
// sleep; the next, after an edge, polls.
func (p *poller) nap(epfd uintptr) bool {
	if !p.napped {
		p.napped = true
		return false
	}
	p.poll(epfd)
	return true
}

// poll takes the ready sockets without blocking and wakes their waiters,
// in the order the sockets became ready. It reports whether it found any.
func (p *poller) poll(epfd uintptr) bool {
	b := p.batch[:0]
	found := false
	for {
		n, err := unix.EpollWait(int(epfd), p.events[:], 0)
		if err != nil || n <= 0 {
			break
		}
		found = true
		p.mu.Lock()
		for i := range n {
			idx := p.events[i].Fd
			if idx < 0 || int(idx) >= len(p.waiters) {
				continue
			}
			w := p.waiters[idx]
			if w == nil {
				continue
			}
			if p.events[i].Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				w.hup.Store(true)
			}
			if w.claim() {
				b = append(b, w)
			}
		}
		p.mu.Unlock()
		if n < len(p.events) {
			break // all taken; a full batch may have left more
		}
	}
	if len(b) > 0 {
		// A goroutine woken by another runs next, and the one woken before
		// it goes to the back of the run queue: wake the first last, so
		// that the run order is the batch's.
		for _, w := range b[1:] {
			w.wake <- struct{}{}
		}
		b[0].wake <- struct{}{}
	}
	clear(b)
	p.batch = b[:0]
	return found
}

// claim marks w as notified and reports whether its goroutine is parked
// and must be woken by the caller.
func (w *waiter) claim() bool {
	for {
		switch w.state.Load() {
		case waiterParked:
			if w.state.CompareAndSwap(waiterParked, waiterRunning) {
				return true
			}
		case waiterRunning:
			if w.state.CompareAndSwap(waiterRunning, waiterReady) {
				return false
			}
		default:
			return false
		}
	}
}

// notify wakes w's goroutine if it waits, or makes its next wait return at
// once: the socket was closed, or its deadline passed.
func (w *waiter) notify() {
	if w.claim() {
		w.wake <- struct{}{}
	}
}

// wait blocks until the socket may have something to read (or was closed,
// or its deadline passed) since the read that found nothing.
func (w *waiter) wait() {
	w.p.parks.Add(1)
	if w.state.CompareAndSwap(waiterRunning, waiterParked) {
		<-w.wake
		return
	}
	w.state.Store(waiterRunning) // notified since: read again
}

// quiet reports whether nothing but new data can end a wait: the peer has
// not closed its side (that does not come as new data after a read that
// drained the socket).
func (w *waiter) quiet() bool { return !w.hup.Load() }

// reset forgets the notifications received while the goroutine ran; it
// calls it right before reading.
func (w *waiter) reset() { w.state.Store(waiterRunning) }

// setDeadline arms the timer for the socket's new read deadline.
func (w *waiter) setDeadline(t time.Time) {
	if t.Equal(w.deadline) {
		return
	}
	w.deadline = t
	if t.IsZero() {
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(time.Until(t), w.notify)
		return
	}
	w.timer.Reset(time.Until(t))
}

// detach takes the socket of rc out of the poller, which must no longer
// notify w (a tunnel reads the socket through Go's netpoller).
func (w *waiter) detach(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		unix.EpollCtl(w.p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	w.release()
}

// release unregisters w; the owner calls it once it no longer reads the
// socket through the poller. Closing the socket takes it out of the epoll
// set; an event already taken for it notifies nobody, or a newer waiter
// in vain.
func (w *waiter) release() {
	if w.timer != nil {
		w.timer.Stop()
	}
	p := w.p
	p.mu.Lock()
	if p.waiters[w.idx] == w {
		p.waiters[w.idx] = nil
		p.free = append(p.free, w.idx)
	}
	p.mu.Unlock()
}

// readRaw is the RawConn.Read callback of timedConn.readPolled: one read.
func (t *timedConn) readRaw(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), t.rbuf)
		if err == syscall.EINTR {
			continue
		}
		t.rn, t.rerr = n, err
		return true
	}
}
