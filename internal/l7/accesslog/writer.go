// Package accesslog writes one line per HTTP request, in the Common Log
// Format or as JSON, into a buffer shared by every service logging to the
// same destination. The buffer goes out when it fills, every flush
// interval, and on Close, so a busy proxy makes one write(2) per many
// lines and an idle one still shows its lines within a second.
package accesslog

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
)

// Stderr is the path that names standard error instead of a file.
const Stderr = "stderr"

// Sizes of the shared buffer and of a line's scratch buffer.
const (
	bufSize     = 64 << 10
	lineSize    = 512
	DefaultTick = time.Second
	pipeBuf     = 4096 // POSIX PIPE_BUF on Linux
	// ErrorLogInterval is the least time between two log lines about
	// failed writes (a full disk fails every write): the first failure is
	// logged at once, later ones at most this often, with their count.
	ErrorLogInterval = 10 * time.Second
)

// Writer is one log destination. Its methods may be called from any
// goroutine. The lock is held only to copy a formatted line into the
// buffer (and, once per 64 KiB, to write the buffer out), so that the
// formatting runs in parallel.
type Writer struct {
	path string // file path, or Stderr

	mu     sync.Mutex
	buf    []byte
	out    io.Writer
	file   *os.File // nil for stderr or an io.Writer given to New
	closed bool
	// maxWrite, when above 0, cuts writes at line ends to at most this
	// many bytes: standard error is shared with the daemon's own log, and
	// only writes up to PIPE_BUF reach a pipe whole, never interleaved.
	maxWrite int

	lines, dropped, errs, lost atomic.Uint64

	// Failed writes: log says so (rate-limited, see ErrorLogInterval);
	// the fields below are guarded by mu.
	log        *slog.Logger
	lastErr    string
	lastErrAt  time.Time
	loggedAt   time.Time // when the last line about a failure was logged
	unlogged   uint64    // failed writes since that line
	unloggedLn uint64    // lines they lost
	failing    bool      // the last write failed

	stop chan struct{}
	done chan struct{}
}

// linePool holds scratch buffers for formatting outside the lock.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, lineSize); return &b }}

// Open starts a Writer on path (appended to, created 0644 if missing) or
// on standard error when path is "stderr", flushed every tick (DefaultTick
// when 0). Failed writes are logged to log (slog.Default() when nil).
func Open(path string, tick time.Duration, log *slog.Logger) (*Writer, error) {
	w := &Writer{path: path, log: log}
	if path == Stderr {
		w.out, w.maxWrite = os.Stderr, pipeBuf
	} else {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		w.out, w.file = f, f
	}
	w.start(tick)
	return w, nil
}

// New starts a Writer on out, which it does not close.
func New(out io.Writer, tick time.Duration, log *slog.Logger) *Writer {
	w := &Writer{out: out, log: log}
	w.start(tick)
	return w
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	return f, nil
}

func (w *Writer) start(tick time.Duration) {
	if tick <= 0 {
		tick = DefaultTick
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.buf = make([]byte, 0, bufSize)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.mu.Lock()
				_ = w.flushLocked()
				w.reportLocked(time.Now())
				w.mu.Unlock()
			}
		}
	}()
}

// Path is the destination Open was given ("" for New).
func (w *Writer) Path() string { return w.path }

// Log formats e in f and queues the line. After Close it drops the line
// and counts it.
func (w *Writer) Log(f Format, e *proxy.Entry) {
	lp := linePool.Get().(*[]byte)
	line := f.Append((*lp)[:0], e)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.dropped.Add(1)
	} else {
		if len(w.buf)+len(line) > cap(w.buf) {
			w.flushLocked()
		}
		w.buf = append(w.buf, line...)
		w.mu.Unlock()
		w.lines.Add(1)
	}
	if cap(line) <= 4*lineSize { // do not keep a huge line's buffer around
		*lp = line
		linePool.Put(lp)
	}
}

// Func returns a proxy.Config.AccessLog callback logging in format f.
func (w *Writer) Func(f Format) func(*proxy.Entry) {
	return func(e *proxy.Entry) { w.Log(f, e) }
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	var err error
	b := w.buf
	for len(b) > 0 && err == nil {
		n := len(b)
		if w.maxWrite > 0 && n > w.maxWrite {
			// Up to the last line end within the bound; a longer line
			// goes alone.
			if i := bytes.LastIndexByte(b[:w.maxWrite], '\n'); i >= 0 {
				n = i + 1
			} else if i := bytes.IndexByte(b, '\n'); i >= 0 {
				n = i + 1
			}
		}
		var k int
		k, err = w.out.Write(b[:n])
		if err != nil {
			b = b[k:]
			break
		}
		b = b[n:]
	}
	if err != nil {
		// The lines are lost either way; retrying a full disk would only
		// stall every request behind the lock.
		w.failed(err, uint64(bytes.Count(b, []byte{'\n'})))
	} else if w.failing {
		w.failing = false
		w.reportLocked(time.Now())
		w.log.Info("access log writes succeed again", "path", w.path)
	}
	w.buf = w.buf[:0]
	return err
}

// failed counts a failed write that lost lines, and logs it unless a
// line about failures was logged less than ErrorLogInterval ago (the
// next one then says how many there were). Called with mu held.
func (w *Writer) failed(err error, lines uint64) {
	now := time.Now()
	w.errs.Add(1)
	w.lost.Add(lines)
	w.failing = true
	w.lastErr, w.lastErrAt = err.Error(), now
	w.unlogged++
	w.unloggedLn += lines
	w.reportLocked(now)
}

// reportLocked logs the failed writes not logged yet, unless the last
// such line is more recent than ErrorLogInterval. Called with mu held.
func (w *Writer) reportLocked(now time.Time) {
	if w.unlogged == 0 || now.Sub(w.loggedAt) < ErrorLogInterval {
		return
	}
	w.log.Warn("access log write failed, lines lost", "path", w.path, "error", w.lastErr,
		"failed_writes", w.unlogged, "lines_lost", w.unloggedLn,
		"failed_writes_total", w.errs.Load())
	w.loggedAt = now
	w.unlogged, w.unloggedLn = 0, 0
}

// Reopen flushes and reopens the file, for logrotate: after the old file
// was renamed, lines go to a new one at the same path. A failure keeps the
// old file. Nothing to do for stderr.
func (w *Writer) Reopen() error {
	if w.file == nil {
		return w.Flush()
	}
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		f.Close()
		return nil
	}
	_ = w.flushLocked()
	old := w.file
	w.out, w.file = f, f
	w.mu.Unlock()
	return old.Close()
}

// Close flushes, stops the flusher and closes the file. Later lines are
// dropped. Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	err := w.flushLocked()
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	if w.file != nil {
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Stats are a Writer's counters.
type Stats struct {
	Path    string
	Lines   uint64 // queued
	Dropped uint64 // logged after Close
	Errors  uint64 // failed writes (each loses a buffer of lines)
	Lost    uint64 // lines lost by failed writes
	// LastError is the last failed write's error and LastErrorAt its
	// time; "" and zero without any.
	LastError   string
	LastErrorAt time.Time
}

// Stats reads the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	lastErr, lastAt := w.lastErr, w.lastErrAt
	w.mu.Unlock()
	return Stats{
		Path: w.path, Lines: w.lines.Load(), Dropped: w.dropped.Load(),
		Errors: w.errs.Load(), Lost: w.lost.Load(),
		LastError: lastErr, LastErrorAt: lastAt,
	}
}
