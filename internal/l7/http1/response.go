package http1

import "bytes"

// Response is a parsed response head. Its byte slices point into the buffer
// given to ParseResponse; like Request it is reused from one response to the
// next.
type Response struct {
	Version Version
	Status  int
	Reason  []byte

	// ContentLength is the Content-Length field's value, or -1 without one.
	// For a response that has no body by rule (to HEAD, 1xx, 204, 304) it
	// still reports what the field said, which for HEAD and 304 is the size
	// of the representation.
	ContentLength int64
	// Chunked: Transfer-Encoding: chunked was received.
	Chunked bool
	// Body is how the body is delimited. AppendResponseHead frames the
	// forwarded head by it, so a proxy that re-encodes the body (chunks an
	// until-close body for an HTTP/1.1 client, or un-chunks one for an
	// HTTP/1.0 client) sets it first.
	Body BodyKind
	// Close: the backend closes the connection after this response
	// (Connection: close, HTTP/1.0 without keep-alive, or a body delimited by
	// the close).
	Close bool
	// KeepAlive: Connection: keep-alive was sent.
	KeepAlive bool
	// Tunnel: after the head the connection carries another protocol in
	// both directions (101 Switching Protocols, or 2xx to CONNECT).
	Tunnel bool
	// Upgrade is the protocol a 101 response switches to.
	Upgrade []byte

	toHead bool
	nf     int
	fields [MaxFields]Field
	kinds  [MaxFields]fieldKind
	fr     framing
}

// Fields returns the header fields in the order received.
func (r *Response) Fields() []Field { return r.fields[:r.nf] }

// Lookup returns the value of the first field named name (case-insensitive,
// name in lower case).
func (r *Response) Lookup(name string) ([]byte, bool) { return lookup(r.fields[:r.nf], name) }

// ParseResponse parses the response head at the start of buf into r and
// returns its length. reqMethod is the method of the request it answers,
// which decides whether a body follows (RFC 9112 §6.3). A 1xx response other
// than 101 is interim: parse the next head after it.
//
// Errors are ErrIncomplete or an *Error with Status 502. The checks are those
// of ParseRequest, minus what only concerns requests (Host, Expect), plus the
// status line; a backend is no more trusted than a client, because a
// response it frames ambiguously desynchronises the proxy's pool connection.
func ParseResponse(buf []byte, r *Response, lim Limits, reqMethod []byte) (n int, err error) {
	n, c := r.parse(buf, lim.norm(), reqMethod)
	if c != codeOK {
		return 0, responseError(c)
	}
	return n, nil
}

func (r *Response) parse(buf []byte, lim Limits, reqMethod []byte) (int, code) {
	r.nf = 0
	le := bytes.IndexByte(buf, '\n')
	if le < 0 {
		if len(buf) > lim.MaxLine+1 {
			return 0, codeLineTooLong
		}
		if n := min(len(buf), 5); string(buf[:n]) != "HTTP/"[:n] {
			return 0, codeBadStatusLine
		}
		return 0, codeIncomplete
	}
	if le == 0 || buf[le-1] != '\r' {
		return 0, codeBareLF
	}
	if le-1 > lim.MaxLine {
		return 0, codeLineTooLong
	}
	if c := r.parseStatusLine(buf[:le-1]); c != codeOK {
		return 0, c
	}
	pos := le + 1
	if !headMayEnd(buf[pos-1:]) {
		if len(buf) >= lim.MaxHeaderBytes {
			return 0, codeHeadTooLarge
		}
		return 0, codeIncomplete
	}
	f := &r.fr
	f.reset(true)
	end, nf, c := parseFields(buf, pos, lim, r.fields[:lim.MaxHeaders], r.kinds[:lim.MaxHeaders], f)
	r.nf = nf
	if c != codeOK {
		return 0, c
	}
	if c := r.applyFraming(f, reqMethod); c != codeOK {
		return 0, c
	}
	return end, codeOK
}

func (r *Response) parseStatusLine(line []byte) code {
	if len(line) < len("HTTP/1.1 200") || line[8] != ' ' {
		return codeBadStatusLine
	}
	switch ver := line[:8]; string(ver) {
	case "HTTP/1.1":
		r.Version = HTTP11
	case "HTTP/1.0":
		r.Version = HTTP10
	default:
		if string(ver[:5]) == "HTTP/" && isDigit(ver[5]) && ver[6] == '.' && isDigit(ver[7]) {
			return codeUnsupportedVersion
		}
		return codeBadStatusLine
	}
	d := line[9:12]
	if !isDigit(d[0]) || !isDigit(d[1]) || !isDigit(d[2]) {
		return codeBadStatus
	}
	r.Status = int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	if r.Status < 100 || r.Status > 599 {
		return codeBadStatus
	}
	// "HTTP/1.1 200" without the SP before an empty reason is common from
	// real servers and cannot affect framing, so it is let through.
	r.Reason = nil
	if len(line) > 12 {
		if line[12] != ' ' || !validValue(line[13:]) {
			return codeBadStatusLine
		}
		r.Reason = line[13:]
	}
	return codeOK
}

func (r *Response) applyFraming(f *framing, reqMethod []byte) code {
	if c := f.transferCoding(r.Version); c != codeOK {
		return c
	}
	r.ContentLength = f.cl
	r.Chunked = f.teCount > 0
	r.KeepAlive = f.connKeepAlive
	r.Close = f.connClose || r.Version == HTTP10 && !f.connKeepAlive
	r.Tunnel = false
	r.Upgrade = nil
	r.toHead = string(reqMethod) == "HEAD"
	switch {
	case r.Status == 101:
		// RFC 9110 §15.2.2: the server must say what it switches to; a
		// proxy cannot tunnel blindly.
		if f.upgrade == nil || r.Version == HTTP10 {
			return codeBadUpgrade
		}
		r.Body, r.Tunnel, r.Upgrade = BodyNone, true, f.upgrade
	case r.toHead || r.Status < 200 || r.Status == 204 || r.Status == 304:
		r.Body = BodyNone
	case string(reqMethod) == "CONNECT" && r.Status < 300:
		r.Body, r.Tunnel = BodyNone, true
	case r.Chunked:
		r.Body = BodyChunked
	case r.ContentLength >= 0:
		r.Body = BodyLength
	default:
		r.Body = BodyUntilClose
		r.Close = true
	}
	if f.connOther {
		markListed(r.fields[:r.nf], r.kinds[:r.nf])
	}
	return codeOK
}
