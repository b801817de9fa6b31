package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// exchange is one request's trip through the proxy: the route, the
// backend and its connection, and what the access log and the backend's
// counters need at the end. It lives in its clientConn and is reset per
// request, so it costs no allocation.
type exchange struct {
	c   *clientConn
	s   *snapshot
	req *http1.Request

	start  time.Time
	isHead bool
	rt     *route

	b      *balancer.Backend
	hp     *hostPool
	u      *upConn
	reused bool
	picked time.Time
	// setCookie is the persistence cookie to insert in the response, nil
	// when the client already holds the right one.
	setCookie []byte

	// bodyCut: the backend stopped taking the request body; the client's
	// connection cannot continue after the response.
	bodyCut bool
	// h2r is the request of an HTTP/2 stream, whose body is read from it
	// rather than from the client's connection; nil over HTTP/1.1.
	h2r *http.Request

	end     time.Time // when the backend's part ended
	status  int
	in, out int64
	wait    time.Duration
	failed  bool // counts against the backend: connect, timeout, broken response, 5xx
}

func (ex *exchange) reset(c *clientConn, s *snapshot, req *http1.Request) {
	*ex = exchange{
		c:      c,
		s:      s,
		req:    req,
		start:  time.Now(),
		isHead: string(req.Method) == "HEAD",
	}
}

var (
	methodHEAD = []byte("HEAD")
	methodGET  = []byte("GET")
)

// idempotent reports whether a request may be sent again after a reused
// connection failed without an answer (RFC 9110 §9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// connect routes the request and finds it a backend connection, trying
// other backends after a failed connect. It returns 0, or the status to
// answer: 503 when no backend is available, 502 when every connect failed.
func (ex *exchange) connect() int {
	c, s, req := ex.c, ex.s, ex.req
	ex.rt = s.match(req.Host, req.Path())
	svc := ex.rt.svc
	if svc == nil {
		return 503
	}
	var pinned *cookieID
	if s.cookie != nil {
		pinned = ex.rt.cookieBackend(s.cookie.Name, req)
	}
	c.tried = balancer.Tried{}
	client, vip := c.client.Addr().Unmap(), c.local.Addr().Unmap()
	for attempt := 0; ; attempt++ {
		var b *balancer.Backend
		// pinned comes from this route's own table, so it belongs to svc.
		if pinned != nil && pinned.b.Available() && !c.tried.Has(pinned.b) {
			b = pinned.b
		} else {
			var err error
			b, err = svc.Pick(client, vip, &c.tried)
			if err != nil {
				if attempt > 0 {
					return 502
				}
				c.p.refused.Add(1)
				return 503
			}
		}
		// The clock is read as rarely as possible (it shows in profiles):
		// the first pick happens at the start, for all it matters.
		ex.picked = ex.start
		if attempt > 0 {
			ex.picked = time.Now()
		}
		// Acquired before the dial so least-connection schedulers count
		// requests still connecting.
		b.Acquire()
		hp := c.p.pool(s, b)
		u, reused, err := c.p.upstream(s, hp, false, ex.picked)
		if err == nil {
			ex.b, ex.hp, ex.u, ex.reused = b, hp, u, reused
			break
		}
		b.Release(0, 0)
		ex.hp = hp // the access log names the last backend tried
		if c.p.killed.Load() {
			return 502
		}
		ex.debug("connect to backend failed", b, err)
		b.ConnectFailed()
		b.ObserveRequest(true, time.Since(ex.picked))
		c.tried.Add(b)
		if attempt >= s.retries {
			return 502
		}
	}
	if s.cookie != nil && (pinned == nil || pinned.b != ex.b) {
		if id := ex.rt.cookieFor(ex.b); id != nil {
			ex.setCookie = id.setCookie
		}
	}
	return 0
}

// upstream returns a pooled connection to hp's backend, or a new one.
func (p *Proxy) upstream(s *snapshot, hp *hostPool, fresh bool, now time.Time) (*upConn, bool, error) {
	if !fresh {
		if u := hp.get(now); u != nil {
			p.upstreamReuses.Add(1)
			return u, true, nil
		}
	}
	u, err := hp.dial(p.dialCtx, s.connectTimeout)
	if err != nil {
		return nil, false, err
	}
	p.upstreamConnects.Add(1)
	hp.b.Connected()
	return u, false, nil
}

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// relay sends the request (head of n bytes in the client's buffer, and
// body) to the backend connection found by connect, and the response back.
// It reports whether the client connection may carry another request.
func (ex *exchange) relay(n int) bool {
	c, s, req := ex.c, ex.s, ex.req
	body := req.BodyKind()

	if req.Expect100 && body != http1.BodyNone {
		// The proxy answers 100 Continue itself, now that a backend is
		// connected, rather than forward the expectation: the body then
		// flows in one pass and no backend can leave the client waiting.
		req.Expect100 = false
		if c.br.Buffered() == n {
			c.tc.writeTimeout(s.bodyTimeout)
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if c.bw.Flush() != nil {
				return ex.abort(false)
			}
		}
	}

	// The head's bytes stay where they are until the client's buffer
	// reads again, which only the body does: a retry re-encodes them.
	c.br.Discard(n)
	if st := ex.send(); st != 0 {
		return ex.fail(st)
	}
	return ex.relayResponse()
}

// send sends the request on the connection found by connect, its body
// from the client's connection (or, over HTTP/2, from ex.h2r) and reads
// the final response head into c.resp. A reused connection that fails
// before any answer is replaced by a new one and the request sent again
// when that is safe. It returns 0, or the status to answer (-1: the
// client is gone, nobody to answer).
func (ex *exchange) send() int {
	c, s, req := ex.c, ex.s, ex.req
	var fw http1.Forwarding
	fw = s.fw
	fw.Client, fw.TLS = c.client.Addr(), c.tls
	body := req.BodyKind()
	retryable := body == http1.BodyNone && idempotent(req.Method)
	method := methodGET
	if ex.isHead {
		method = methodHEAD
	}
	if ex.reused && !retryable && ex.u.stale() && !ex.redial() {
		// A request that cannot be sent twice is not trusted to a pooled
		// connection the backend has closed meanwhile.
		return 502
	}
	for {
		u := ex.u
		u.tc.writeTimeout(s.bodyTimeout)
		u.bw.Write(http1.AppendRequestHead(u.bw.AvailableBuffer(), req, &fw, http1.ConnDefault))
		if body == http1.BodyNone {
			if u.bw.Flush() != nil {
				if ex.reused && retryable && ex.redial() {
					continue
				}
				ex.failed = true
				return 502
			}
		} else if st := ex.sendBody(); st != 0 {
			return st
		}

		// The backend has had no time to answer yet: a read now would
		// find nothing. Wait for the poller's word, under the response
		// timeout; where that does not apply (no poller, a read that
		// filled the buffer, a backend that closed), let the other
		// connections run first, after which the answer is usually there.
		u.tc.readTimeout(s.responseTimeout)
		u.tc.armRead()
		if !u.tc.awaitData() {
			runtime.Gosched()
		}
		st, retry := ex.readResponseHead(method, retryable)
		if retry {
			if ex.redial() {
				continue
			}
			ex.failed = true
			st = 502
		}
		return st
	}
}

// settle ends the backend's part of an exchange whose response was relayed
// whole: its connection goes back to the pool, ready for the next request,
// unless it cannot carry one (the backend said close, or did not take the
// whole request body, or sent more than the response, or was closed by
// CloseBackend); a 5xx counts against the backend.
func (ex *exchange) settle() {
	u, resp := ex.u, &ex.c.resp
	ex.end = time.Now()
	if resp.Close || ex.bodyCut || u.br.Buffered() > 0 || u.killed.Load() {
		u.close()
	} else {
		u.hp.put(u, ex.s.maxIdle, ex.end)
	}
	ex.u = nil
	if resp.Status >= 500 {
		ex.failed = true
	}
}

// redial replaces a reused connection that failed before any answer with
// a new one to the same backend.
func (ex *exchange) redial() bool {
	ex.u.close()
	u, _, err := ex.c.p.upstream(ex.s, ex.hp, true, ex.picked)
	if err != nil {
		ex.u = nil
		ex.b.ConnectFailed()
		return false
	}
	ex.u, ex.reused = u, false
	return true
}

// sendBody relays the request body to the backend. It returns 0 or the
// status to answer.
func (ex *exchange) sendBody() int {
	if ex.h2r != nil {
		return ex.sendH2Body()
	}
	c, s, req, u := ex.c, ex.s, ex.req, ex.u
	c.tc.readTimeout(s.bodyTimeout)
	var n int64
	var e ioErr
	if req.Chunked {
		buf := chunkBufs.Get().(*[]byte)
		c.cr.Reset(c.br, s.lim)
		n, e = copyChunked(u.bw, &c.cr, *buf, true)
		chunkBufs.Put(buf)
	} else {
		n, e = copyBody(u.bw, c.br, req.ContentLength)
	}
	ex.in = n
	if e == ioOK && u.bw.Flush() != nil {
		e = ioWrite
	}
	switch e {
	case ioOK:
		return 0
	case ioBadChunk:
		c.p.badRequests.Add(1)
		return 400
	case ioRead:
		// The client stopped sending or left: nobody to answer.
		return -1
	}
	// The backend stopped reading the body. It may have answered early
	// (413 from a size limit, 401) and closed: its answer is read next and
	// relayed; without one the client gets 502.
	ex.bodyCut = true
	return 0
}

// readResponseHead reads the backend's final response head into c.resp,
// relaying interim 1xx responses to an HTTP/1.1 client. It returns 0 or
// the status to answer; retry says the reused connection failed before
// sending anything and the request may go again on a new one.
func (ex *exchange) readResponseHead(method []byte, retryable bool) (status int, retry bool) {
	c, s, u := ex.c, ex.s, ex.u
	resp := &c.resp
	// The response timeout bounds the whole head, interim responses
	// included, not the wait for each byte: a backend trickling its head
	// must not hold the request for longer. The first read waits under the
	// progress timeout (armed rarely, so that the usual head, read in one
	// go, costs no deadline change); once a read brought part of a head,
	// the deadline that read had becomes the head's: between 3/4 of the
	// timeout and the timeout after the request was sent.
	u.tc.readTimeout(s.responseTimeout)
	whole := false
	for {
		buf, _ := u.br.Peek(u.br.Buffered())
		n, err := http1.ParseResponse(buf, resp, http1.Limits{}, method)
		if err == http1.ErrIncomplete {
			if !whole && len(buf) > 0 && !u.tc.readArmed.IsZero() {
				u.tc.readDeadline(u.tc.readArmed)
				whole = true
			}
			if _, err := u.br.Peek(len(buf) + 1); err != nil {
				switch {
				case isTimeout(err):
					ex.failed = true
					ex.debug("no response within the response timeout", ex.b, err)
					return 504, false
				case len(buf) == 0 && ex.reused && retryable && !u.killed.Load():
					return 0, true
				}
				ex.failed = true
				ex.debug("backend connection failed before a response", ex.b, err)
				return 502, false
			}
			continue
		}
		if err != nil {
			ex.failed = true
			ex.debug("malformed response from backend", ex.b, err)
			return 502, false
		}
		if resp.Status >= 100 && resp.Status < 200 && resp.Status != 101 {
			// Interim: relay all but 100 (answered by the proxy already,
			// or not asked for) to clients that understand them.
			if resp.Status != 100 && ex.req.Version == http1.HTTP11 && c.bw != nil {
				c.tc.writeTimeout(s.bodyTimeout)
				c.bw.Write(http1.AppendResponseHead(c.bw.AvailableBuffer(), resp, http1.ConnDefault))
				c.bw.Flush()
			}
			u.br.Discard(n)
			if !whole && !u.tc.readArmed.IsZero() {
				u.tc.readDeadline(u.tc.readArmed)
				whole = true
			}
			continue
		}
		if s.accessLog != nil {
			ex.wait = time.Since(ex.start)
		}
		u.br.Discard(n)
		return 0, false
	}
}

// relayResponse sends the parsed response head and its body to the client
// and settles the exchange.
func (ex *exchange) relayResponse() bool {
	c, s, req, u := ex.c, ex.s, ex.req, ex.u
	resp := &c.resp
	if resp.Tunnel && (resp.Status != 101 || req.Upgrade == nil) {
		// A switch nobody asked for, or a 2xx to a CONNECT never sent.
		ex.failed = true
		return ex.fail(502)
	}

	keep := !req.Close && c.p.keepAlive() && !ex.bodyCut
	// The rest of a body the backend did not take is still coming.
	c.linger = ex.bodyCut
	if resp.Body == http1.BodyChunked && req.Version == http1.HTTP10 {
		// An HTTP/1.0 client knows no chunks: decode, and delimit by
		// closing.
		resp.Body = http1.BodyUntilClose
	}
	if resp.Body == http1.BodyUntilClose || resp.Tunnel {
		keep = false
	}
	conn := http1.ConnDefault
	switch {
	case resp.Tunnel:
	case !keep:
		conn = http1.ConnClose
	case req.Version == http1.HTTP10:
		conn = http1.ConnKeepAlive
	}
	ex.status = resp.Status
	c.tc.writeTimeout(s.bodyTimeout)
	head := http1.AppendResponseHead(c.bw.AvailableBuffer(), resp, conn)
	if ex.setCookie != nil {
		head = append(head[:len(head)-2], ex.setCookie...)
		head = append(head, "\r\n"...)
	}
	if _, err := c.bw.Write(head); err != nil {
		return ex.abort(false)
	}
	c.p.countStatus(resp.Status)

	if resp.Tunnel {
		c.bw.Flush()
		ex.in, ex.out = tunnel(c, u, s.idleTimeout)
		ex.u.close()
		ex.u = nil
		ex.done()
		return false
	}

	u.tc.readTimeout(s.bodyTimeout)
	var n int64
	var e ioErr
	switch resp.Body {
	case http1.BodyLength:
		n, e = copyBody(c.bw, u.br, resp.ContentLength)
	case http1.BodyUntilClose:
		if resp.Chunked {
			buf := chunkBufs.Get().(*[]byte)
			c.cr.Reset(u.br, http1.Limits{})
			n, e = copyChunked(c.bw, &c.cr, *buf, false)
			chunkBufs.Put(buf)
		} else {
			n, e = copyBody(c.bw, u.br, -1)
		}
	case http1.BodyChunked:
		buf := chunkBufs.Get().(*[]byte)
		c.cr.Reset(u.br, http1.Limits{})
		n, e = copyChunked(c.bw, &c.cr, *buf, true)
		chunkBufs.Put(buf)
	}
	ex.out = n
	switch e {
	case ioRead, ioBadChunk:
		// The backend died or garbled its body after the head went out:
		// no status can be sent any more, only the close tells the client.
		ex.failed = true
		c.p.aborted.Add(1)
		return ex.abort(true)
	case ioWrite:
		c.p.aborted.Add(1)
		return ex.abort(true)
	}
	// The backend's part is over: its connection goes back to the pool
	// before the client's last write. (A body delimited by the close has
	// resp.Close set; a chunked one decoded for an HTTP/1.0 client leaves
	// the connection reusable.)
	ex.settle()
	ex.release()
	if c.bw.Flush() != nil {
		c.p.aborted.Add(1)
		keep = false
	}
	ex.log()
	return keep
}

// fail ends an exchange that produced no response head: answer status
// (unless the client is gone, status < 0) and close the backend
// connection. It reports whether the client connection may continue.
func (ex *exchange) fail(status int) bool {
	c := ex.c
	if ex.u != nil {
		ex.u.close()
		ex.u = nil
	}
	if status < 0 {
		c.p.countStatus(0)
		ex.status = 0
		ex.done()
		return false
	}
	// The request body may be partly unread: the connection cannot be
	// trusted to be at a request boundary.
	closeConn := ex.req.BodyKind() != http1.BodyNone || ex.req.Close || !c.p.keepAlive()
	c.writeError(ex.s, status, closeConn, ex.isHead)
	ex.status = status
	ex.done()
	return !closeConn
}

// abort ends an exchange whose response can no longer be completed: the
// client connection closes.
func (ex *exchange) abort(counted bool) bool {
	if ex.status != 0 && ex.c.bw != nil {
		// What was relayed goes out, so the client sees a truncated body
		// rather than nothing.
		ex.c.bw.Flush()
	}
	if ex.u != nil {
		ex.u.close()
		ex.u = nil
	}
	if !counted {
		ex.c.p.aborted.Add(1)
	}
	if ex.status == 0 {
		ex.c.p.countStatus(0)
	}
	ex.done()
	return false
}

// debug logs why an exchange failed, at Debug: per-request logging is
// guarded so that it costs nothing otherwise.
func (ex *exchange) debug(msg string, b *balancer.Backend, err error) {
	if !ex.s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	ex.s.log.Debug(msg, "service", ex.s.name, "client", ex.c.client, "backend", b.Addr, "error", err)
}

// done releases the backend and records the exchange.
func (ex *exchange) done() {
	ex.release()
	ex.log()
}

// release ends the backend's part: its in-flight count and counters.
func (ex *exchange) release() {
	if ex.b != nil {
		if ex.end.IsZero() {
			ex.end = time.Now()
		}
		ex.b.Release(ex.in, ex.out)
		ex.b.ObserveRequest(ex.failed, ex.end.Sub(ex.picked))
		ex.b = nil
	}
}

// log hands the exchange to the access log.
func (ex *exchange) log() {
	s := ex.s
	if s.accessLog == nil {
		return
	}
	c := ex.c
	e := &c.entry
	e.Start = ex.start
	e.Client = c.client
	e.Service = s.name
	e.Backend = ""
	if ex.hp != nil {
		e.Backend = ex.hp.addr
	}
	e.Proto = ex.req.Version.String()
	if c.isH2.Load() {
		e.Proto = "HTTP/2.0"
	}
	e.Status = ex.status
	e.BytesIn, e.BytesOut = ex.in, ex.out
	e.Wait = ex.wait
	if ex.end.IsZero() {
		ex.end = time.Now()
	}
	e.Total = ex.end.Sub(ex.start)
	s.accessLog(e)
}
