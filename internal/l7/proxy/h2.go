package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"golang.org/x/net/http2"

	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

type connKey struct{}

// newH2 builds the HTTP/2 server of a proxy. It is registered with an
// http.Server that serves nothing itself: its Shutdown is how x/net/http2
// is told to send GOAWAY on every connection and close each once its
// streams are done.
func newH2(s *snapshot) (*http2.Server, *http.Server) {
	base := &http.Server{ReadHeaderTimeout: s.headerTimeout, IdleTimeout: s.idleTimeout}
	srv := &http2.Server{IdleTimeout: s.idleTimeout}
	http2.ConfigureServer(base, srv)
	return srv, base
}

// serveH2 runs an HTTP/2 connection negotiated by ALPN.
func (p *Proxy) serveH2(c *clientConn, tc *tls.Conn) {
	c.isH2.Store(true)
	if p.conns.Closing() {
		return
	}
	ctx := context.WithValue(context.Background(), connKey{}, c)
	p.h2.ServeConn(tc, &http2.ServeConnOpts{Context: ctx, Handler: p, BaseConfig: p.h2base})
}

// h2req is the per-stream state of ServeHTTP, pooled: HTTP/2 requests run
// concurrently on one connection, so they cannot share the clientConn's.
type h2req struct {
	cc   clientConn // carries req, resp, tried, the exchange and the entry
	head []byte
}

var h2reqs = sync.Pool{New: func() any {
	hr := new(h2req)
	hr.cc.msgs = new(msgs)
	return hr
}}

// ServeHTTP relays one request received over HTTP/2 (or any net/http
// server) through the same routing, balancing and upstream pools as the
// HTTP/1.1 path. The request is re-encoded as an HTTP/1.1 head and parsed
// with the same strictness as a request read from the wire; hop-by-hop
// fields are dropped both ways.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.snap.Load()
	hr := h2reqs.Get().(*h2req)
	defer h2reqs.Put(hr)
	c := &hr.cc
	// Field by field: the Request and Response inside are large, and
	// ParseRequest and ParseResponse overwrite them anyway.
	c.p, c.client, c.local, c.tls = p, netip.AddrPort{}, netip.AddrPort{}, false
	c.isH2.Store(true)
	c.entry = Entry{}
	if parent, ok := r.Context().Value(connKey{}).(*clientConn); ok {
		c.client, c.local, c.tls = parent.client, parent.local, parent.tls
	} else {
		c.client, _ = netip.ParseAddrPort(r.RemoteAddr)
		c.tls = r.TLS != nil
	}
	p.requests.Add(1)
	if r.Method == http.MethodConnect {
		// Extended CONNECT (WebSocket over HTTP/2) included: not relayed.
		p.badRequests.Add(1)
		p.writeH2Error(w, s, 405)
		c.logRejected(s, 405)
		return
	}

	hr.head = appendH1Head(hr.head[:0], r)
	req := &c.req
	if _, err := http1.ParseRequest(hr.head, req, s.lim); err != nil {
		status := 400
		var e *http1.Error
		if errors.As(err, &e) {
			status = e.Status
		}
		p.badRequests.Add(1)
		p.writeH2Error(w, s, status)
		c.logRejected(s, status)
		return
	}
	ex := &c.ex
	ex.reset(c, s, req)
	if s.accessLog != nil {
		c.noteRequest(req)
	}
	if st := ex.connect(); st != 0 {
		p.writeH2Error(w, s, st)
		ex.status = st
		ex.log()
		return
	}
	ex.relayH2(w, r)
}

// appendH1Head renders r's head as HTTP/1.1, without hop-by-hop fields,
// framed by what net/http knows of the body.
func appendH1Head(dst []byte, r *http.Request) []byte {
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, r.URL.RequestURI()...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, r.Host...)
	dst = append(dst, "\r\n"...)
	for k, vs := range r.Header {
		if hopByHop(k) {
			continue
		}
		for _, v := range vs {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	switch {
	case r.ContentLength > 0 && len(r.Trailer) == 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, r.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	case r.ContentLength < 0 || len(r.Trailer) > 0:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
		dst = append(dst, "Content-Length: 0\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// hopByHop reports fields that belong to one connection (RFC 9110 §7.6.1)
// or that the re-encoding writes itself.
func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding",
		"Upgrade", "Trailer", "Content-Length", "Host", "Http2-Settings":
		return true
	}
	return false
}

// relayH2 is relay for a request from ServeHTTP: body from r.Body,
// response into w.
func (ex *exchange) relayH2(w http.ResponseWriter, r *http.Request) {
	c, s := ex.c, ex.s
	ex.h2r = r
	if st := ex.send(); st != 0 {
		ex.h2fail(w, st)
		return
	}

	u := ex.u
	resp := &c.resp
	if resp.Tunnel {
		ex.failed = true
		ex.h2fail(w, 502)
		return
	}
	h := w.Header()
	for _, f := range resp.Fields() {
		name := string(f.Name)
		if hopByHop(name) || listedInConnection(resp, f.Name) {
			continue
		}
		h.Add(name, string(f.Value))
	}
	if resp.Body == http1.BodyLength {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	if ex.setCookie != nil {
		h.Add("Set-Cookie", ex.rt.cookieFor(ex.b).value)
		h.Set("Cache-Control", "private")
	}
	w.WriteHeader(resp.Status)
	ex.status = resp.Status
	c.p.countStatus(resp.Status)

	u.tc.readTimeout(s.bodyTimeout)
	fl, _ := w.(http.Flusher)
	var n int64
	var e ioErr
	bufp := chunkBufs.Get().(*[]byte)
	switch resp.Body {
	case http1.BodyLength:
		n, e = copyToWriter(w, fl, u.br, nil, *bufp, resp.ContentLength)
	case http1.BodyUntilClose:
		n, e = copyToWriter(w, fl, u.br, nil, *bufp, -1)
	case http1.BodyChunked:
		c.cr.Reset(u.br, http1.Limits{})
		n, e = copyToWriter(w, fl, u.br, &c.cr, *bufp, -1)
		if e == ioOK {
			for _, f := range c.cr.Trailers() {
				h.Add(http.TrailerPrefix+string(f.Name), string(f.Value))
			}
		}
	}
	chunkBufs.Put(bufp)
	ex.out = n
	if e != ioOK {
		if e != ioWrite {
			ex.failed = true
		}
		c.p.aborted.Add(1)
		u.close()
		ex.u = nil
		ex.done()
		// The stream cannot be completed: reset it rather than let the
		// client take a truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
	ex.settle()
	ex.done()
}

// sendH2Body relays the body of an HTTP/2 request to the backend,
// flushing as it comes. It returns 0 or the status to answer: a failure
// on either side resets the stream, so which hardly matters.
func (ex *exchange) sendH2Body() int {
	r, req, u := ex.h2r, ex.req, ex.u
	var n int64
	var err error
	switch req.BodyKind() {
	case http1.BodyLength:
		n, err = copyStreaming(u.bw, u.bw, r.Body, req.ContentLength)
		if err == nil && n < req.ContentLength {
			err = io.ErrUnexpectedEOF
		}
	case http1.BodyChunked:
		cw := http1.NewChunkedWriter(u.bw)
		n, err = copyStreaming(cw, u.bw, r.Body, -1)
		if err == nil {
			var tr []http1.Field
			for k, vs := range r.Trailer {
				for _, v := range vs {
					tr = append(tr, http1.Field{Name: []byte(k), Value: []byte(v)})
				}
			}
			err = cw.CloseWithTrailers(tr)
		}
	}
	ex.in = n
	if err == nil {
		err = u.bw.Flush()
	}
	if err != nil {
		ex.failed = true
		return 502
	}
	return 0
}

// copyStreaming copies up to n bytes (all, for n < 0) from src to dst,
// flushing bw after each read: an HTTP/2 body arrives frame by frame, and
// a streamed upload must reach the backend as it comes.
func copyStreaming(dst io.Writer, bw *bufio.Writer, src io.Reader, n int64) (int64, error) {
	bufp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bufp)
	buf := *bufp
	var done int64
	for n < 0 || done < n {
		p := buf
		if n >= 0 && int64(len(p)) > n-done {
			p = p[:n-done]
		}
		k, err := src.Read(p)
		if k > 0 {
			if _, werr := dst.Write(p[:k]); werr != nil {
				return done, werr
			}
			done += int64(k)
			if werr := bw.Flush(); werr != nil {
				return done, werr
			}
		}
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// h2fail answers status on a stream whose request reached no response.
func (ex *exchange) h2fail(w http.ResponseWriter, status int) {
	if ex.u != nil {
		ex.u.close()
		ex.u = nil
	}
	ex.c.p.writeH2Error(w, ex.s, status)
	ex.status = status
	ex.done()
}

func (p *Proxy) writeH2Error(w http.ResponseWriter, s *snapshot, status int) {
	var body []byte
	ctype := "text/plain; charset=utf-8"
	if status >= 502 && status <= 504 {
		body, ctype = s.pages[status-502], s.pageTypes[status-502]
	} else {
		body = []byte(builtinPage(status))
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	w.Write(body)
	p.countStatus(status)
}

// listedInConnection reports whether name is named by a Connection field
// of r, which makes it hop-by-hop.
func listedInConnection(r *http1.Response, name []byte) bool {
	for _, f := range r.Fields() {
		if !equalFold(f.Name, "connection") {
			continue
		}
		for e := range bytes.SplitSeq(f.Value, []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(e), name) {
				return true
			}
		}
	}
	return false
}

// copyToWriter copies a response body from br (through cr when chunked)
// to w, flushing whenever the next read would block.
func copyToWriter(w io.Writer, fl http.Flusher, br *bufio.Reader, cr *http1.ChunkedReader, buf []byte, n int64) (int64, ioErr) {
	var done int64
	for n < 0 || done < n {
		if fl != nil && (cr == nil && br.Buffered() == 0 || cr != nil && !cr.Ready()) {
			fl.Flush()
		}
		p := buf
		if n >= 0 && int64(len(p)) > n-done {
			p = p[:n-done]
		}
		var k int
		var err error
		if cr != nil {
			k, err = cr.Read(p)
		} else {
			k, err = br.Read(p)
		}
		if k > 0 {
			if _, werr := w.Write(p[:k]); werr != nil {
				return done, ioWrite
			}
			done += int64(k)
		}
		if err == io.EOF && n < 0 {
			return done, ioOK
		}
		if err != nil {
			return done, ioRead
		}
	}
	return done, ioOK
}
