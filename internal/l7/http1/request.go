package http1

import "bytes"

// Request is a parsed request head. Its byte slices point into the buffer
// given to ParseRequest. A Request is meant to be reused from one request to
// the next: ParseRequest overwrites every field and allocates nothing.
type Request struct {
	Method  []byte
	Target  []byte
	Form    TargetForm
	Version Version

	// Host is the authority of an absolute- or authority-form target,
	// otherwise the Host field's value; empty only for an HTTP/1.0 request
	// without Host. AppendRequestHead writes it as the Host field, so a
	// caller may replace it.
	Host []byte

	// ContentLength is the body's length, or -1 when there is no
	// Content-Length (a chunked body, or none).
	ContentLength int64
	// Chunked: the body is chunked (Transfer-Encoding: chunked).
	Chunked bool
	// Close: the connection ends after the response, because of
	// Connection: close or an HTTP/1.0 request without keep-alive.
	Close bool
	// KeepAlive: Connection: keep-alive was sent, which is what keeps an
	// HTTP/1.0 connection open.
	KeepAlive bool
	// Expect100: an HTTP/1.1 client waits for 100 Continue before sending
	// the body.
	Expect100 bool
	// Upgrade holds the Upgrade field's protocols when the request asks to
	// switch protocols (HTTP/1.1, Connection: upgrade); otherwise nil. A
	// proxy that will not tunnel the protocol clears it, and the head
	// writer then drops the Upgrade: h2c, for one, cannot cross a proxy,
	// whose writer drops the HTTP2-Settings field it depends on.
	Upgrade []byte

	pathStart  int
	teTrailers bool
	nf         int
	fields     [MaxFields]Field
	kinds      [MaxFields]fieldKind
	fr         framing
}

// Fields returns the header fields in the order received.
func (r *Request) Fields() []Field { return r.fields[:r.nf] }

// Lookup returns the value of the first field named name (case-insensitive,
// name in lower case).
func (r *Request) Lookup(name string) ([]byte, bool) { return lookup(r.fields[:r.nf], name) }

// BodyKind says how the request body is delimited. A request without
// Content-Length or Transfer-Encoding has none: requests are never delimited
// by closing the connection.
func (r *Request) BodyKind() BodyKind {
	switch {
	case r.Chunked:
		return BodyChunked
	case r.ContentLength >= 0:
		return BodyLength
	}
	return BodyNone
}

var rootPath = []byte("/")

// Path returns the path of an origin- or absolute-form target, without the
// query ("/" for "http://host"), and nil for the other forms. It is what
// routing by path prefix compares; do not modify it.
func (r *Request) Path() []byte {
	if r.Form != OriginForm && r.Form != AbsoluteForm {
		return nil
	}
	p := r.Target[r.pathStart:]
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if len(p) == 0 {
		return rootPath
	}
	return p
}

func lookup(fields []Field, name string) ([]byte, bool) {
	for i := range fields {
		if equalFold(fields[i].Name, name) {
			return fields[i].Value, true
		}
	}
	return nil, false
}

var crlf = []byte("\r\n")

// headMayEnd reports whether b, which starts at the LF ending the start
// line, has a line that starts with CR or LF: the end of the head, or a
// defect that the full parse will name. Until then the fields are not
// examined, so that a client trickling bytes does not make every call
// re-validate all it sent so far.
func headMayEnd(b []byte) bool {
	// The common case, a head read whole and nothing after it, needs no
	// scan.
	if len(b) >= 3 && b[len(b)-3] == '\n' && b[len(b)-2] == '\r' && b[len(b)-1] == '\n' {
		return true
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 || i+1 == len(b) {
			return false
		}
		if c := b[i+1]; c == '\r' || c == '\n' {
			return true
		}
		b = b[i+1:]
	}
}

// h2Preface is what an HTTP/2 client with prior knowledge sends first
// (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// ParseRequest parses the request head at the start of buf into r and
// returns its length, final CRLF included; the body, if any, starts at
// buf[n:].
//
// It returns ErrIncomplete when buf holds the start of a head that may still
// be valid (read more and call again with the longer buffer), ErrHTTP2Preface
// for a prior-knowledge HTTP/2 connection, and otherwise an *Error whose
// Status is the answer to send before closing. Rejected: anything RFC 9112
// leaves ambiguous between a proxy and a backend; see the package
// documentation for the list.
//
// Repeated Content-Length fields are accepted only when byte-identical.
func ParseRequest(buf []byte, r *Request, lim Limits) (n int, err error) {
	n, c := r.parse(buf, lim.norm())
	if c != codeOK {
		return 0, requestError(c)
	}
	return n, nil
}

func (r *Request) parse(buf []byte, lim Limits) (int, code) {
	r.nf = 0
	le := bytes.IndexByte(buf, '\n')
	if le < 0 {
		if len(buf) > lim.MaxLine+1 {
			return 0, codeLineTooLong
		}
		// Fail fast on what cannot become a request line, such as a TLS
		// ClientHello on a plain port, instead of waiting for a timeout.
		for _, c := range buf {
			if c == ' ' {
				break
			}
			if !isTchar[c] {
				return 0, codeBadMethod
			}
		}
		return 0, codeIncomplete
	}
	if le == 0 || buf[le-1] != '\r' {
		return 0, codeBareLF
	}
	if le-1 > lim.MaxLine {
		return 0, codeLineTooLong
	}
	if c := r.parseRequestLine(buf[:le-1]); c != codeOK {
		if c == codeH2Preface {
			switch {
			case len(buf) >= len(h2Preface) && string(buf[:len(h2Preface)]) == h2Preface:
				return 0, codeH2Preface
			case len(buf) < len(h2Preface) && string(buf) == h2Preface[:len(buf)]:
				return 0, codeIncomplete
			}
			return 0, codeUnsupportedVersion
		}
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
	f.reset(false)
	end, nf, c := parseFields(buf, pos, lim, r.fields[:lim.MaxHeaders], r.kinds[:lim.MaxHeaders], f)
	r.nf = nf
	if c != codeOK {
		return 0, c
	}
	if c := r.applyFraming(f); c != codeOK {
		return 0, c
	}
	return end, codeOK
}

func (r *Request) parseRequestLine(line []byte) code {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return codeBadRequestLine
	}
	method := line[:sp1]
	if !isToken(method) {
		return codeBadMethod
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		// No version (HTTP/0.9), or two spaces in a row.
		return codeBadRequestLine
	}
	target, ver := rest[:sp2], rest[sp2+1:]
	switch string(ver) {
	case "HTTP/1.1":
		r.Version = HTTP11
	case "HTTP/1.0":
		r.Version = HTTP10
	default:
		if len(ver) == 8 && string(ver[:5]) == "HTTP/" && isDigit(ver[5]) && ver[6] == '.' && isDigit(ver[7]) {
			if string(method) == "PRI" && string(target) == "*" && string(ver) == "HTTP/2.0" {
				return codeH2Preface
			}
			return codeUnsupportedVersion
		}
		return codeBadVersion
	}
	form, authority, pathStart, c := parseTarget(method, target)
	if c != codeOK {
		return c
	}
	r.Method, r.Target, r.Form, r.pathStart = method, target, form, pathStart
	r.Host = authority
	return codeOK
}

// applyFraming turns the facts gathered from the fields into the request's
// framing and connection state, rejecting combinations that two parsers
// could read differently.
func (r *Request) applyFraming(f *framing) code {
	if c := f.transferCoding(r.Version); c != codeOK {
		return c
	}
	switch {
	case f.hostCount > 1:
		return codeMultipleHost
	case f.hostCount == 0 && r.Version == HTTP11:
		return codeMissingHost
	case f.hostCount == 1:
		if !validAuthority(f.host, false, true) {
			return codeBadHost
		}
		if r.Host == nil {
			r.Host = f.host
		} else if !equalFoldBytes(r.Host, f.host) {
			// RFC 9112 §3.2.2 says to ignore Host here, but a proxy that
			// routes on one and a backend that reads the other disagree
			// on the request's destination.
			return codeHostMismatch
		}
	}
	r.ContentLength = f.cl
	r.Chunked = f.teCount > 0
	r.KeepAlive = f.connKeepAlive
	r.Close = f.connClose || r.Version == HTTP10 && !f.connKeepAlive
	// RFC 9110 §10.1.1 and §7.8: HTTP/1.0 requests cannot expect 100 or
	// upgrade.
	r.Expect100 = f.expect100 && r.Version == HTTP11
	r.Upgrade = nil
	if f.connUpgrade && f.upgrade != nil && r.Version == HTTP11 {
		r.Upgrade = f.upgrade
	}
	r.teTrailers = f.teTrailers
	if f.connOther {
		markListed(r.fields[:r.nf], r.kinds[:r.nf])
	}
	return codeOK
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseFields parses field lines from buf[pos:] through the empty line that
// ends the section, storing them in fields and kinds, and returns the
// position after that empty line.
func parseFields(buf []byte, pos int, lim Limits, fields []Field, kinds []fieldKind, f *framing) (end, n int, c code) {
	for {
		rest := buf[pos:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(buf) >= lim.MaxHeaderBytes {
				return 0, n, codeHeadTooLarge
			}
			return 0, n, codeIncomplete
		}
		if i == 0 || rest[i-1] != '\r' {
			return 0, n, codeBareLF
		}
		pos += i + 1
		if pos > lim.MaxHeaderBytes {
			return 0, n, codeHeadTooLarge
		}
		line := rest[:i-1]
		if len(line) == 0 {
			return pos, n, codeOK
		}
		name, value, c := splitField(line)
		if c != codeOK {
			return 0, n, c
		}
		if n == len(fields) {
			return 0, n, codeTooManyFields
		}
		k := classify(name)
		fields[n] = Field{Name: name, Value: value}
		kinds[n] = k
		n++
		if k != kindOther {
			if c := f.note(k, value); c != codeOK {
				return 0, n, c
			}
		}
	}
}
