package proxy

import (
	"errors"
	"net"
	"os"
	"time"
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
// own.
func (t *timedConn) clearDeadlines() {
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
	return t.nc.Read(b)
}

// armRead sets the read deadline a read about to start needs.
func (t *timedConn) armRead() {
	if t.readPer > 0 {
		now := time.Now()
		if t.readArmed.Sub(now) < t.readPer*3/4 {
			t.readArmed = now.Add(t.readPer)
			t.nc.SetReadDeadline(t.readArmed)
		}
	} else if !t.readAbs.Equal(t.readArmed) {
		t.readArmed = t.readAbs
		t.nc.SetReadDeadline(t.readArmed)
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
