package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/l7/poller"
)

// timedConn is the io.Reader and io.Writer a connection's bufio buffers
// sit on. It keeps deadlines on the socket so that a peer that stops
// making progress is dropped, while touching the deadline as rarely as
// possible: buffered I/O reaches it only for real reads and writes, and a
// progress timeout is re-armed only once a quarter of it has passed, so a
// busy keep-alive connection sets its deadline every few seconds, not per
// request. The price is that a progress timeout fires between 3/4 of its
// value and its value after the last progress.
//
// It is owned by one goroutine; other goroutines only close the socket.
type timedConn struct {
	nc net.Conn

	readPer    time.Duration // progress timeout of reads; 0: readAbs rules
	readAbs    time.Time     // absolute read deadline when readPer is 0
	readArmed  time.Time     // the read deadline set on the socket
	writePer   time.Duration
	writeArmed time.Time

	// pending holds bytes already read from the socket (see
	// clientConn.waitRequest), returned before the socket is read again;
	// pendingErr, an error or EOF found that way, is returned after them.
	pending    []byte
	pendingErr error

	// w, when set, is the socket's registration with the poller: reads
	// wait there for data instead of in Go's netpoller (poller.go).
	// raw and readFn read the socket; rbuf, rn and rerr carry one read
	// through the callback. kick is w for other goroutines, which only
	// notify it, after closing the socket.
	w      *poller.Waiter
	kick   atomic.Pointer[poller.Waiter]
	raw    syscall.RawConn
	readFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error
	// drained: the last read returned less than it could take, so the
	// socket was empty then, and any data since has notified w.
	drained bool
}

// usePoller makes reads of a plain TCP socket wait on pl (nil: none).
func (t *timedConn) usePoller(pl *poller.Poller) {
	if pl == nil {
		return
	}
	sc, ok := t.nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	w, err := pl.Register(raw)
	if err != nil {
		return // the poller stopped: Go's netpoller
	}
	t.w, t.raw, t.readFn = w, raw, t.readRaw
	t.kick.Store(w)
}

// stopPolling hands the socket back to Go's netpoller, for a tunnel whose
// goroutines read and close both sockets.
func (t *timedConn) stopPolling() {
	if t.w != nil {
		t.w.Detach(t.raw)
		t.w = nil
	}
}

// releasePoller unregisters the socket; its owner calls it at the close,
// or when the poller stopped (a wait reported false) to read through Go's
// netpoller from then on.
func (t *timedConn) releasePoller() {
	if t.w != nil {
		t.w.Release()
		t.w = nil
	}
}

// wakeReader wakes the socket's reader after another goroutine closed the
// socket: a reader waiting on the poller would not hear of it otherwise.
func (t *timedConn) wakeReader() {
	if w := t.kick.Load(); w != nil {
		w.Notify()
	}
}

// awaitData waits for the poller's word before a read that would find
// nothing: the last read drained the socket and the peer has not closed
// its side (a close may be pending without new data). It reports whether
// it waited. The caller has just armed a progress timeout (readTimeout,
// armRead), whose deadline is in the future, so the waiter's timer bounds
// the wait. When the poller has stopped, the socket goes back to Go's
// netpoller (t.w is nil afterwards).
func (t *timedConn) awaitData() bool {
	if t.w == nil || !t.drained || !t.w.Quiet() {
		return false
	}
	if !t.w.Wait() {
		t.releasePoller()
		return false
	}
	return true
}

// readPolled reads into b, waiting on the poller while there is nothing.
// The raw read honours the socket's deadline and fails once it is closed;
// the waiter's timer and wakeReader end a wait for either.
func (t *timedConn) readPolled(b []byte) (int, error) {
	t.rbuf = b
	for {
		// Notifications so far are for data this read will see (or
		// already saw): forget them, as Go's netpoller forgets readiness
		// before a read, or a later wait would not wait.
		t.w.Reset()
		if err := t.raw.Read(t.readFn); err != nil {
			t.rbuf = nil
			return 0, err
		}
		if t.rerr != syscall.EAGAIN {
			break
		}
		// The waiter's timer may fire a moment before Go's netpoller marks
		// the deadline passed, and the read above, forgetting the timer's
		// notification, found nothing: the deadline is checked here too.
		if !t.readArmed.IsZero() && !time.Now().Before(t.readArmed) {
			t.rbuf = nil
			return 0, os.ErrDeadlineExceeded
		}
		if !t.w.Wait() {
			// The poller stopped: Go's netpoller from now on, under the
			// deadline armRead set on the socket.
			t.rbuf = nil
			t.releasePoller()
			return t.nc.Read(b)
		}
	}
	t.rbuf = nil
	t.drained = t.rn < len(b)
	switch n, err := t.rn, t.rerr; {
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	default:
		return n, nil
	}
}

// readTimeout makes every read wait at most d (approximately, see above)
// for data.
func (t *timedConn) readTimeout(d time.Duration) {
	if t.readPer != d {
		t.readPer = d
		t.readArmed = time.Time{}
	}
}

// readDeadline makes reads fail after the instant at.
func (t *timedConn) readDeadline(at time.Time) {
	t.readPer = 0
	t.readAbs = at
}

// writeTimeout makes every write wait at most d (approximately).
func (t *timedConn) writeTimeout(d time.Duration) {
	if t.writePer != d {
		t.writePer = d
		t.writeArmed = time.Time{}
	}
}

// clearDeadlines removes every deadline, for a tunnel that manages its
// own and reads through Go's netpoller.
func (t *timedConn) clearDeadlines() {
	t.stopPolling()
	t.readPer, t.writePer = 0, 0
	t.readAbs = time.Time{}
	t.readArmed, t.writeArmed = time.Time{}, time.Time{}
	t.nc.SetDeadline(time.Time{})
}

func (t *timedConn) Read(b []byte) (int, error) {
	if len(t.pending) > 0 {
		n := copy(b, t.pending)
		t.pending = t.pending[n:]
		return n, nil
	}
	if err := t.pendingErr; err != nil {
		t.pendingErr = nil
		return 0, err
	}
	t.armRead()
	if t.w != nil {
		return t.readPolled(b)
	}
	return t.nc.Read(b)
}

// armRead sets the read deadline a read about to start needs.
func (t *timedConn) armRead() {
	if t.readPer > 0 {
		now := time.Now()
		if t.readArmed.Sub(now) < t.readPer*3/4 {
			t.readArmed = now.Add(t.readPer)
			t.nc.SetReadDeadline(t.readArmed)
			if t.w != nil {
				t.w.SetDeadline(t.readArmed)
			}
		}
	} else if !t.readAbs.Equal(t.readArmed) {
		t.readArmed = t.readAbs
		t.nc.SetReadDeadline(t.readArmed)
		if t.w != nil {
			t.w.SetDeadline(t.readArmed)
		}
	}
}

func (t *timedConn) Write(b []byte) (int, error) {
	if t.writePer > 0 {
		now := time.Now()
		if t.writeArmed.Sub(now) < t.writePer*3/4 {
			t.writeArmed = now.Add(t.writePer)
			t.nc.SetWriteDeadline(t.writeArmed)
		}
	}
	return t.nc.Write(b)
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
