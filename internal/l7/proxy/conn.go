package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// Connection states, for Shutdown to close only connections that wait for
// a request.
const (
	connActive int32 = iota
	connIdle
	connClosed
)

// clientConn is one client connection. Its goroutine owns everything but
// state and nc's Close, which Shutdown uses.
type clientConn struct {
	p *Proxy
	// nc is the accepted socket, never reassigned: closing it ends any
	// I/O of the connection, TLS or not. HTTP is spoken over tc.nc, the
	// socket or the TLS connection over it.
	nc net.Conn
	tc timedConn
	br *bufio.Reader
	bw *bufio.Writer

	client, local netip.AddrPort
	tls           bool
	state         atomic.Int32
	served        atomic.Bool // a request was read: no longer a new connection
	isH2          atomic.Bool // HTTP/2: x/net/http2 owns the connection
	// linger: the connection ends after an answer sent while the client
	// may still be sending; it closes gracefully (lingerClose).
	linger bool

	// brSize is the read buffer's size. The buffers are taken from their
	// pools when a request arrives and given back while the connection
	// waits for the next one (see waitRequest).
	brSize int
	// raw and waitFn wait for the socket to become readable and read the
	// first bytes of the next request into first, without holding the
	// buffers; nil for TLS, whose own buffering hides readiness, and where
	// the platform has no raw connection.
	raw    syscall.RawConn
	waitFn func(fd uintptr) bool
	first  [firstReadSize]byte

	// *msgs holds the parsed request and response, 10 KiB: taken from a
	// pool with the buffers and given back with them.
	*msgs
	tried balancer.Tried
	ex    exchange
	entry Entry
	// logBuf holds copies of the method, host and path for the access log:
	// the request head's own bytes may be overwritten by its body.
	logBuf []byte
}

func newClientConn(p *Proxy, nc net.Conn) *clientConn {
	c := &clientConn{p: p, nc: nc}
	c.client = addrPortOf(nc.RemoteAddr())
	c.local = addrPortOf(nc.LocalAddr())
	return c
}

// firstReadSize is how much of a request waitRequest reads before the
// connection takes its buffers back: a whole request head of most clients
// (wrk's is 40 bytes, a browser's 400-1000), so that the next read comes
// from memory.
const firstReadSize = 1024

// msgs is the parse state of the request in flight.
type msgs struct {
	req  http1.Request
	resp http1.Response
	cr   http1.ChunkedReader
}

var msgsPool = sync.Pool{New: func() any { return new(msgs) }}

// free returns the buffers to their pools. The goroutine calls it last.
func (c *clientConn) free() {
	if c.msgs != nil {
		msgsPool.Put(c.msgs)
		c.msgs = nil
	}
	if c.br != nil {
		putReader(c.br)
		c.br = nil
	}
	if c.bw != nil {
		putWriter(c.bw)
		c.bw = nil
	}
}

// closeIfIdle closes c if it waits for a request (Shutdown).
func (c *clientConn) closeIfIdle() {
	if c.isH2.Load() {
		return // told to go away by Shutdown through the http2 server
	}
	if c.state.CompareAndSwap(connIdle, connClosed) {
		c.closeSocket()
	}
}

// kill closes c whatever it is doing (forced Shutdown).
func (c *clientConn) kill() {
	c.state.Store(connClosed)
	c.closeSocket()
}

// closeSocket closes c from another goroutine than its own, which it
// wakes if it waits on the poller.
func (c *clientConn) closeSocket() {
	c.nc.Close()
	c.tc.wakeReader()
}

// goIdle marks c as waiting for a request; false means Shutdown (or
// SetReleasing) has begun and c must close instead. The order (store,
// then check) pairs with Shutdown's and SetReleasing's (set the flag, then
// scan states): one of the two sees the other.
func (c *clientConn) goIdle(first bool) bool {
	c.state.Store(connIdle)
	if first {
		// A new connection gets its first request served even while
		// keep-alive is off (SetReleasing skips it too).
		return !c.p.conns.Closing()
	}
	return c.p.keepAlive()
}

// goActive marks c as busy with a request; false means Shutdown closed it.
func (c *clientConn) goActive() bool {
	return c.state.CompareAndSwap(connIdle, connActive)
}

// serve is the HTTP/1.1 loop: read a request, relay it, repeat while both
// sides keep the connection. Pipelined requests wait in br and are served
// in order, each after the previous response is written.
func (c *clientConn) serve() {
	defer c.tc.releasePoller()
	defer c.tc.nc.Close()
	defer func() {
		if c.linger {
			c.lingerClose()
		}
	}()
	s := c.p.snap.Load()
	c.brSize = max(s.lim.MaxHeaderBytes, http1.DefaultMaxHeaderBytes)
	c.setupIdleWait()
	first := true
	for {
		s = c.p.snap.Load()
		n, ok := c.readHead(s, first)
		if !ok {
			return
		}
		first = false
		c.served.Store(true)
		// The request may have waited through an Update.
		s = c.p.snap.Load()
		if !c.handle(s, n) {
			return
		}
	}
}

// readHead waits for the next request and parses its head, answering and
// reporting false when the connection must end.
func (c *clientConn) readHead(s *snapshot, first bool) (int, bool) {
	if c.br == nil || c.br.Buffered() == 0 {
		// The first request gets the header timeout from the accept, so
		// that silent connections cannot pile up; later ones may idle.
		if first {
			c.tc.readDeadline(time.Now().Add(s.headerTimeout))
		} else {
			c.tc.readTimeout(s.idleTimeout)
		}
		if !c.goIdle(first) {
			return 0, false
		}
		err := c.waitRequest()
		if !c.goActive() || err != nil {
			return 0, false
		}
	} else if c.p.conns.Closing() {
		return 0, false
	}
	deadlineSet := first
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		n, err := http1.ParseRequest(buf, &c.req, s.lim)
		if err == nil {
			return n, true
		}
		if err != http1.ErrIncomplete {
			status := 400
			var e *http1.Error
			if errors.As(err, &e) {
				status = e.Status
			}
			c.p.requests.Add(1)
			c.reject(s, status)
			return 0, false
		}
		if !deadlineSet {
			c.tc.readDeadline(time.Now().Add(s.headerTimeout))
			deadlineSet = true
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if isTimeout(err) {
				c.p.requests.Add(1)
				c.reject(s, 408)
			}
			return 0, false
		}
	}
}

// waitRequest waits for the first bytes of the next request. Over plain
// TCP it waits with its buffers and parse state back in their pools (an
// idle keep-alive connection holds 50 KiB less), reading the first bytes
// into c.first, which the read buffer then takes without a system call:
// one read when the request is already there, as a plain read costs; a
// read that finds nothing, the poller and a read when it is not.
func (c *clientConn) waitRequest() error {
	if c.raw != nil {
		if c.br != nil {
			putReader(c.br)
			putWriter(c.bw)
			c.br, c.bw = nil, nil
			msgsPool.Put(c.msgs)
			c.msgs = nil
		}
		c.tc.armRead()
		// The client sends its next request after our response.
		c.tc.awaitData()
		if c.tc.w != nil {
			n, err := c.tc.readPolled(c.first[:])
			if err != nil {
				return err
			}
			c.tc.pending = c.first[:n]
		} else if err := c.raw.Read(c.waitFn); err != nil {
			return err
		}
	}
	if c.br == nil {
		c.br = getReader(&c.tc, c.brSize)
		c.bw = getWriter(&c.tc)
		c.msgs = msgsPool.Get().(*msgs)
	}
	_, err := c.br.Peek(1)
	return err
}

// reject answers a request the proxy refuses before it reaches a backend,
// and closes.
func (c *clientConn) reject(s *snapshot, status int) {
	c.p.badRequests.Add(1)
	c.writeError(s, status, true, false)
	c.logRejected(s, status)
}

// writeError sends a response made by the proxy itself.
func (c *clientConn) writeError(s *snapshot, status int, closeConn, head bool) {
	c.tc.writeTimeout(s.bodyTimeout)
	b := appendError(c.bw.AvailableBuffer(), s, status, closeConn, head)
	c.p.countStatus(status)
	c.bw.Write(b)
	c.bw.Flush()
	if closeConn {
		c.linger = true
	}
}

func (c *clientConn) logRejected(s *snapshot, status int) {
	if s.accessLog == nil {
		return
	}
	c.entry = Entry{
		Start:   time.Now(),
		Client:  c.client,
		Service: s.name,
		Proto:   "HTTP/1.1",
		Status:  status,
	}
	if c.isH2.Load() {
		c.entry.Proto = "HTTP/2.0"
	}
	s.accessLog(&c.entry)
}

// handle relays one parsed request and its response and reports whether
// the connection may carry another request.
func (c *clientConn) handle(s *snapshot, n int) bool {
	c.p.requests.Add(1)
	req := &c.req
	ex := &c.ex
	ex.reset(c, s, req)
	if s.accessLog != nil {
		c.noteRequest(req)
	}
	if string(req.Method) == "CONNECT" {
		// A reverse proxy is no forward proxy: a tunnel to wherever the
		// client names is refused.
		c.p.badRequests.Add(1)
		c.finish(s, 405, true, false)
		return false
	}
	if req.Upgrade != nil && equalFold(req.Upgrade, "h2c") {
		// h2c cannot cross a proxy (its HTTP2-Settings field is hop-by-hop
		// and dropped); the request goes on as plain HTTP/1.1, as
		// RFC 9113 §3.2 lets a server that ignores the upgrade do.
		req.Upgrade = nil
	}
	if req.Upgrade != nil && req.BodyKind() != http1.BodyNone {
		// A tunnel must start right after the head; a body in between
		// leaves no clean place for it to begin.
		c.p.badRequests.Add(1)
		c.finish(s, 400, true, false)
		return false
	}

	status := ex.connect()
	if status != 0 {
		// Without a body the connection stays at a request boundary; with
		// one, unread, it cannot.
		keep := req.BodyKind() == http1.BodyNone && !req.Close && c.p.keepAlive()
		c.br.Discard(n)
		c.finish(s, status, !keep, ex.isHead)
		return keep
	}
	return ex.relay(n)
}

// noteRequest copies what the access log needs from the head, which the
// body may overwrite.
func (c *clientConn) noteRequest(req *http1.Request) {
	b := c.logBuf[:0]
	b = append(b, req.Method...)
	b = append(b, req.Host...)
	// The target as sent, query included, as HAProxy and nginx log it.
	b = append(b, req.Target...)
	c.logBuf = b
	m, h := len(req.Method), len(req.Host)
	c.entry.Method = b[:m:m]
	c.entry.Host = b[m : m+h : m+h]
	c.entry.Path = b[m+h:]
}

// finish answers a request the proxy could not relay (no backend, a
// refused method) and logs it.
func (c *clientConn) finish(s *snapshot, status int, closeConn, head bool) {
	c.writeError(s, status, closeConn, head)
	c.ex.status = status
	c.ex.log()
}

// addrPortOf returns a socket address as an AddrPort, or the zero value
// for an address that is not IP.
func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// ioErr tells which end of a copy failed.
type ioErr uint8

const (
	ioOK       ioErr = iota
	ioRead           // the source failed or ended early
	ioWrite          // the destination failed
	ioBadChunk       // the chunked framing of the source is malformed
)

// copyBody relays a Content-Length body (n >= 0) or one that ends at EOF
// (n < 0) from br to bw without an intermediate buffer: bytes go from br's
// buffer to bw (or straight to its socket when large). bw is flushed
// before each read that would block, so a slow body streams.
func copyBody(bw *bufio.Writer, br *bufio.Reader, n int64) (int64, ioErr) {
	var done int64
	for n < 0 || done < n {
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return done, ioWrite
			}
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF && n < 0 {
					return done, ioOK
				}
				return done, ioRead
			}
		}
		k := br.Buffered()
		if n >= 0 && int64(k) > n-done {
			k = int(n - done)
		}
		b, _ := br.Peek(k)
		w, err := bw.Write(b)
		br.Discard(w)
		done += int64(w)
		if err != nil {
			return done, ioWrite
		}
	}
	return done, ioOK
}

// copyChunked relays a chunked body from cr, re-encoding it chunk by chunk
// onto bw (or decoding it, for a reader that gets no chunked framing, when
// chunked is false), trailers included. bw is flushed before each read
// that would wait, so chunks stream as they come. Errors say which side
// failed; a malformed body is ioBadChunk.
func copyChunked(bw *bufio.Writer, cr *http1.ChunkedReader, buf []byte, chunked bool) (int64, ioErr) {
	var done int64
	for {
		if !cr.Ready() {
			if err := bw.Flush(); err != nil {
				return done, ioWrite
			}
		}
		k, err := cr.Read(buf)
		if k > 0 {
			done += int64(k)
			var werr error
			if chunked {
				b := http1.AppendChunkHeader(bw.AvailableBuffer(), int64(k))
				bw.Write(b)
				bw.Write(buf[:k])
				_, werr = bw.WriteString("\r\n")
			} else {
				_, werr = bw.Write(buf[:k])
			}
			if werr != nil {
				return done, ioWrite
			}
		}
		if err == io.EOF {
			if chunked {
				b := http1.AppendLastChunk(bw.AvailableBuffer(), cr.Trailers())
				if _, err := bw.Write(b); err != nil {
					return done, ioWrite
				}
			}
			return done, ioOK
		}
		if err != nil {
			var e *http1.Error
			if errors.As(err, &e) {
				return done, ioBadChunk
			}
			return done, ioRead
		}
	}
}
