//go:build linux

package poller

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is one epoll instance and the goroutine that polls it. Register,
// Close, Err and Stats may be called from any goroutine.
type Poller struct {
	epfd int
	file *os.File        // epfd: kept referenced, or its finalizer closes it
	raw  syscall.RawConn // epfd in Go's netpoller, to sleep on
	log  *slog.Logger
	// pollFn, napFn and pollCtl are poll, nap and a poll under Control as
	// values, made once: a method value allocates.
	pollFn, napFn func(fd uintptr) bool
	pollCtl       func(fd uintptr)
	napped, found bool
	// epollWait is unix.EpollWait; tests make it fail.
	epollWait func(epfd int, events []unix.EpollEvent, msec int) (int, error)

	mu      sync.Mutex
	waiters []*Waiter // by index, the data of the socket's epoll event
	free    []int32
	err     error // why it stopped: ErrClosed or epoll's failure

	_ [64]byte // parks, written by every waiting goroutine, on a line of its own

	// parks counts the waits begun: while goroutines keep reaching their
	// next wait, the poller has company in the run queue and polls again
	// after them rather than sleep.
	parks   atomic.Uint64
	stopped atomic.Bool // Close was called or epoll failed
	wakeups atomic.Uint64
	done    chan struct{}

	events [128]unix.EpollEvent
	batch  []*Waiter
}

// ErrClosed is returned by Register after Close, and by Err after Close.
var ErrClosed = errors.New("poller: closed")

// Start creates the epoll instance and starts the poller's goroutine.
// The poller logs to log (slog.Default() when nil) if epoll fails later.
func Start(log *slog.Logger) (*Poller, error) {
	return start(log, unix.EpollWait)
}

func start(log *slog.Logger, wait func(int, []unix.EpollEvent, int) (int, error)) (*Poller, error) {
	if log == nil {
		log = slog.Default()
	}
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile puts it in Go's netpoller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("poller: %w", err)
	}
	f := os.NewFile(uintptr(fd), "l7-poller")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("poller: %w", err)
	}
	p := &Poller{epfd: fd, file: f, raw: raw, log: log, epollWait: wait, done: make(chan struct{})}
	p.pollFn, p.napFn = p.poll, p.nap
	p.pollCtl = func(fd uintptr) { p.found = p.poll(fd) }
	go p.run()
	return p, nil
}

// Close stops the poller: its goroutine ends, the epoll instance is
// closed and every waiter is woken, to read through Go's netpoller from
// then on. Close waits for the goroutine and is idempotent.
func (p *Poller) Close() error {
	p.stop(ErrClosed)
	<-p.done
	return nil
}

// Err reports why the poller stopped: nil while it runs, ErrClosed after
// Close, or epoll's error.
func (p *Poller) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stats are a poller's counters.
type Stats struct {
	Sockets int    // registered now
	Wakeups uint64 // goroutines woken by the poller, in all
}

// Stats reads the counters.
func (p *Poller) Stats() Stats {
	p.mu.Lock()
	n := len(p.waiters) - len(p.free)
	p.mu.Unlock()
	return Stats{Sockets: n, Wakeups: p.wakeups.Load()}
}

// stop records why the poller stops (the first reason wins), wakes every
// waiter and makes the goroutine end; the goroutine closes epfd.
func (p *Poller) stop(why error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = why
	}
	p.stopped.Store(true)
	ws := make([]*Waiter, 0, len(p.waiters))
	for _, w := range p.waiters {
		if w != nil {
			ws = append(ws, w)
		}
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.Notify()
	}
	// A sleeping goroutine wakes at the deadline and sees stopped.
	p.file.SetReadDeadline(time.Unix(1, 0))
}

// Register adds the socket of rc to the poller.
func (p *Poller) Register(rc syscall.RawConn) (*Waiter, error) {
	w := &Waiter{p: p, wake: make(chan struct{}, 1)}
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, err
	}
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
		// Under epfd's Control: Close cannot close it meanwhile.
		if perr := p.raw.Control(func(epfd uintptr) {
			err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, int(fd), &ev)
		}); perr != nil {
			err = ErrClosed
		}
	})
	if cerr != nil || err != nil {
		w.Release()
		if err == nil {
			err = cerr
		}
		return nil, fmt.Errorf("poller: register: %w", err)
	}
	return w, nil
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

func (p *Poller) run() {
	defer close(p.done)
	defer p.file.Close()
	var seen uint64
	busy := time.Now()
	for !p.stopped.Load() {
		if p.raw.Control(p.pollCtl) != nil {
			break
		}
		if !p.found {
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
			if !p.stopped.Load() {
				p.file.SetReadDeadline(time.Time{})
			}
			busy = time.Now()
		}
		runtime.Gosched()
	}
}

// nap is the RawConn.Read callback of a nap: the first call only asks to
// sleep; the next, after an edge, polls.
func (p *Poller) nap(epfd uintptr) bool {
	if !p.napped {
		p.napped = true
		return false
	}
	p.poll(epfd)
	return true
}

// poll takes the ready sockets without blocking and wakes their waiters,
// in the order the sockets became ready. It reports whether it found any.
// A failing epoll stops the poller.
func (p *Poller) poll(epfd uintptr) bool {
	if p.stopped.Load() {
		return true // ends a sleep; run sees stopped
	}
	b := p.batch[:0]
	found := false
	for {
		n, err := p.epollWait(int(epfd), p.events[:], 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			p.log.Error("HTTP poller failed: reads of every http service wait in Go's netpoller from now on", "error", err)
			p.stop(fmt.Errorf("poller: epoll_wait: %w", err))
			return true
		}
		if n <= 0 {
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
			w.wakeUp()
		}
		b[0].wakeUp()
		p.wakeups.Add(uint64(len(b)))
	}
	clear(b)
	p.batch = b[:0]
	return found
}

// Waiter is one socket's registration with the poller. One goroutine at a
// time (its owner) reads the socket and calls Wait, Reset, Quiet,
// SetDeadline, Detach and Release; any goroutine may call Notify.
type Waiter struct {
	p     *Poller
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

// claim marks w as notified and reports whether its goroutine is parked
// and must be woken by the caller.
func (w *Waiter) claim() bool {
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

// wakeUp hands w's parked goroutine its token. It never blocks: the
// channel holds one token, and claim lets one caller at a time send one
// to a goroutine that waits to take it; were it full all the same, the
// token there wakes the goroutine as well.
func (w *Waiter) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Notify wakes w's goroutine if it waits, or makes its next Wait return
// at once: the socket was closed, or its deadline passed. It never
// blocks.
func (w *Waiter) Notify() {
	if w.claim() {
		w.wakeUp()
	}
}

// Wait blocks until the socket may have something to read (or was
// closed, or its deadline passed) since the read that found nothing. It
// reports false, at once or on waking, when the poller has stopped: the
// owner must then Release w and read through Go's netpoller.
func (w *Waiter) Wait() bool {
	p := w.p
	if p.stopped.Load() {
		return false
	}
	p.parks.Add(1)
	if w.state.CompareAndSwap(waiterRunning, waiterParked) {
		// stop sets stopped before notifying: either it finds w parked and
		// wakes it, or w sees stopped here.
		if p.stopped.Load() && w.state.CompareAndSwap(waiterParked, waiterRunning) {
			return false
		}
		<-w.wake
		return !p.stopped.Load()
	}
	w.state.Store(waiterRunning) // notified since: read again
	return true
}

// Quiet reports whether nothing but new data can end a wait: the peer
// has not closed its side (that does not come as new data after a read
// that drained the socket).
func (w *Waiter) Quiet() bool { return !w.hup.Load() }

// Reset forgets the notifications received while the goroutine ran; the
// owner calls it right before reading, as Go's netpoller forgets
// readiness before a read.
func (w *Waiter) Reset() { w.state.Store(waiterRunning) }

// SetDeadline arms the timer for the socket's new read deadline (the
// zero time: none).
func (w *Waiter) SetDeadline(t time.Time) {
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
		w.timer = time.AfterFunc(time.Until(t), w.Notify)
		return
	}
	w.timer.Reset(time.Until(t))
}

// Detach takes the socket of rc out of the poller and releases w: the
// socket is read through Go's netpoller from now on.
func (w *Waiter) Detach(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		w.p.raw.Control(func(epfd uintptr) {
			unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	})
	w.Release()
}

// Release unregisters w; the owner calls it once it no longer reads the
// socket through the poller (it closed it, or Wait reported false).
// Closing the socket takes it out of the epoll set; an event already taken
// for it notifies nobody, or a newer waiter in vain.
func (w *Waiter) Release() {
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
