package l4

import (
	"io"
	"math"
	"sync/atomic"
	"time"
)

// An idle timeout must not cost the relay its zero-copy path. Counting
// bytes in a reader wrapped around the source would hide the *net.TCPConn
// from io.Copy and turn splice(2) into read/write through a user-space
// buffer; renewing read deadlines would interrupt the copy and cannot see
// a transfer that is busy in the other direction. Instead an idleWatch
// polls a progress number from a timer: on Linux the sum of the kernel's
// TCP_INFO byte counters of both sockets (idle_linux.go), elsewhere — or
// for connections that are not plain TCP, where splice does not apply
// anyway — a counter updated by countingReader.
//
// The watch closes the connection once progress stood still for at least
// the idle timeout. Progress is sampled every idle/4 and the last change
// is dated to the sample that saw it, so an idle connection closes between
// 1 and 1.25 idle timeouts after its last byte, and a connection that
// moves any byte within each idle timeout is never closed. A check that
// runs more than a period late does not count the delay: while the
// process did not run, neither did the reader that would have counted
// the client's bytes.

// progressFunc returns a number that grows whenever the connection moves
// data, or false once it cannot tell any more (the sockets are closed).
type progressFunc func() (uint64, bool)

// minIdleCheck bounds how often a watch polls, whatever the timeout.
const minIdleCheck = 5 * time.Millisecond

// idleWatch runs onIdle when progress has not changed for idle. Between
// checks it is a stopped timer, not a goroutine.
type idleWatch struct {
	idle, every time.Duration
	progress    progressFunc
	onIdle      func()
	timer       *time.Timer
	stopped     atomic.Bool

	// Owned by check: the timer is re-armed only at the end of a check,
	// so two checks never run at once.
	last  uint64
	since time.Time
	// checked is when the previous check ran: a check that runs much
	// later than planned means this process did not run (a busy host, a
	// stopped VM), and no byte could have been read meanwhile either.
	checked time.Time
}

func startIdleWatch(idle time.Duration, progress progressFunc, onIdle func()) *idleWatch {
	w := &idleWatch{
		idle:     idle,
		every:    max(idle/4, minIdleCheck),
		progress: progress,
		onIdle:   onIdle,
		since:    time.Now(),
	}
	w.last, _ = progress()
	w.checked = w.since
	// Armed only after w.timer is set, because check re-arms it.
	w.timer = time.AfterFunc(math.MaxInt64, w.check)
	w.timer.Reset(w.every)
	return w
}

func (w *idleWatch) check() {
	if w.stopped.Load() {
		return
	}
	p, ok := w.progress()
	if !ok {
		return
	}
	now := time.Now()
	if late := now.Sub(w.checked) - 2*w.every; late > 0 {
		// Time the process stood still is no evidence that the client
		// did: the bytes it sent wait in the socket, and the reader that
		// would count them has not run either. Leave it out of the idle time.
		w.since = w.since.Add(late)
	}
	w.checked = now
	if p != w.last {
		w.last, w.since = p, now
	} else if now.Sub(w.since) >= w.idle {
		w.onIdle()
		return
	}
	w.timer.Reset(w.every)
}

// stop ends the watch. A check already running may still finish, but it
// will not call onIdle after stop returns unless it had decided to before.
func (w *idleWatch) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}

// countingReader counts the bytes read through it into n.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}
