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

	lines, dropped, errs atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

// linePool holds scratch buffers for formatting outside the lock.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, lineSize); return &b }}

// Open starts a Writer on path (appended to, created 0644 if missing) or
// on standard error when path is "stderr", flushed every tick (DefaultTick
// when 0).
func Open(path string, tick time.Duration) (*Writer, error) {
	w := &Writer{path: path}
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
func New(out io.Writer, tick time.Duration) *Writer {
	w := &Writer{out: out}
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
				_ = w.Flush()
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
	for b := w.buf; len(b) > 0 && err == nil; {
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
		_, err = w.out.Write(b[:n])
		b = b[n:]
	}
	w.buf = w.buf[:0]
	if err != nil {
		// The lines are lost either way; retrying a full disk would only
		// stall every request behind the lock.
		w.errs.Add(1)
	}
	return err
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
	Lines   uint64 // queued
	Dropped uint64 // logged after Close
	Errors  uint64 // failed writes (each loses a buffer of lines)
}

// Stats reads the counters.
func (w *Writer) Stats() Stats {
	return Stats{Lines: w.lines.Load(), Dropped: w.dropped.Load(), Errors: w.errs.Load()}
}
