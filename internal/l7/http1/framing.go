package http1

import (
	"bytes"
	"math"
)

// BodyKind says how a message's body is delimited (RFC 9112 §6.3).
type BodyKind uint8

const (
	// BodyNone: no body follows the head.
	BodyNone BodyKind = iota
	// BodyLength: exactly ContentLength bytes follow (possibly zero).
	BodyLength
	// BodyChunked: a chunked body follows; read it with a ChunkedReader.
	BodyChunked
	// BodyUntilClose: the body runs until the backend closes the
	// connection. Only responses have it.
	BodyUntilClose
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "BodyKind(?)"
}

// Version is the HTTP/1.x version of a message.
type Version uint8

const (
	HTTP10 Version = 10
	HTTP11 Version = 11
)

func (v Version) String() string {
	switch v {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP11:
		return "HTTP/1.1"
	}
	return "HTTP/?"
}

// framing gathers, while the field lines are parsed, the facts that decide
// how the message is delimited and how the connection behaves.
type framing struct {
	response bool

	clCount int
	cl      int64
	clFirst []byte

	teCount       int
	teLastChunked bool // the final coding of the final field is chunked
	teCodings     int  // codings over all Transfer-Encoding fields

	hostCount int
	host      []byte

	connClose, connKeepAlive, connUpgrade bool
	// connOther: some Connection field names other fields, which then have
	// to be marked hop-by-hop once all fields are known.
	connOther bool

	upgradeCount int
	upgrade      []byte

	expect100  bool
	teTrailers bool
}

func (f *framing) reset(response bool) { *f = framing{response: response, cl: -1} }

// note records one special field. It rejects on the spot what no later field
// could make valid.
func (f *framing) note(k fieldKind, v []byte) code {
	switch k {
	case kindLookalike:
		return codeFramingLookalike
	case kindContentLength:
		n, ok := parseContentLength(v)
		if !ok {
			return codeBadContentLength
		}
		// RFC 9110 §8.6 allows identical repeats to be merged. Only
		// byte-identical ones are: "42" and "042" agree in value but a
		// recipient that keeps either field may be fooled by the other.
		if f.clCount > 0 && string(v) != string(f.clFirst) {
			return codeConflictingContentLength
		}
		f.clCount++
		f.cl, f.clFirst = n, v
	case kindTransferEncoding:
		f.teCount++
		for list := v; ; {
			e, rest, more := cutElement(list)
			if !isToken(e) {
				// Empty elements, parameters and anything else that is not
				// a bare coding name: legal for some recipients, ambiguous
				// for others.
				return codeBadTE
			}
			if f.teLastChunked {
				// chunked must be applied once and last (RFC 9112 §6.1).
				if equalFold(e, "chunked") {
					return codeBadTE
				}
				return codeTENotChunked
			}
			f.teLastChunked = equalFold(e, "chunked")
			f.teCodings++
			if !more {
				break
			}
			list = rest
		}
	case kindConnection:
		for list := v; ; {
			e, rest, more := cutElement(list)
			switch {
			case len(e) == 0:
				// RFC 9110 §5.6.1: empty list elements are ignored.
			case !isToken(e):
				return codeBadConnection
			case equalFold(e, "close"):
				f.connClose = true
			case equalFold(e, "keep-alive"):
				f.connKeepAlive = true
			case equalFold(e, "upgrade"):
				f.connUpgrade = true
			default:
				f.connOther = true
			}
			if !more {
				break
			}
			list = rest
		}
	case kindHost:
		f.hostCount++
		f.host = v
	case kindUpgrade:
		f.upgradeCount++
		if f.upgradeCount > 1 || !validUpgrade(v) {
			return codeBadUpgrade
		}
		f.upgrade = v
	case kindTrailer:
		for list := v; ; {
			e, rest, more := cutElement(list)
			switch {
			case len(e) == 0:
			case !isToken(e):
				return codeBadTrailerDecl
			case forbiddenInTrailer(classify(e)):
				return codeBadTrailerDecl
			}
			if !more {
				break
			}
			list = rest
		}
	case kindExpect:
		if f.response {
			return codeOK
		}
		for list := v; ; {
			e, rest, more := cutElement(list)
			switch {
			case len(e) == 0:
			case equalFold(e, "100-continue"):
				f.expect100 = true
			default:
				return codeBadExpect
			}
			if !more {
				break
			}
			list = rest
		}
	case kindTE:
		for list := v; ; {
			e, rest, more := cutElement(list)
			if equalFold(e, "trailers") {
				f.teTrailers = true
			}
			if !more {
				break
			}
			list = rest
		}
	}
	return codeOK
}

// transferCoding applies the Transfer-Encoding rules common to requests and
// responses once all fields are known.
func (f *framing) transferCoding(v Version) code {
	switch {
	case f.teCount == 0:
		return codeOK
	case v == HTTP10:
		// RFC 9112 §6.1: an HTTP/1.0 recipient might not know chunked, so
		// the framing is faulty whatever it says.
		return codeTEInHTTP10
	case f.clCount > 0:
		return codeCLWithTE
	case !f.teLastChunked:
		return codeTENotChunked
	case f.teCodings > 1:
		// gzip, chunked and friends: legal, but nothing here decodes them
		// and forwarding them unexamined widens what a backend must agree
		// on.
		return codeUnsupportedTE
	}
	return codeOK
}

// markListed flags fields named by a Connection field as hop-by-hop.
func markListed(fields []Field, kinds []fieldKind) {
	for i := range fields {
		if kinds[i]&^kindListed != kindConnection {
			continue
		}
		for list := fields[i].Value; ; {
			e, rest, more := cutElement(list)
			if len(e) > 0 {
				for j := range fields {
					if equalFoldBytes(fields[j].Name, e) {
						kinds[j] |= kindListed
					}
				}
			}
			if !more {
				break
			}
			list = rest
		}
	}
}

// forbiddenInTrailer reports fields that must never come from a trailer
// section: a recipient that merges trailers into the header would let them
// change framing or routing after the fact (RFC 9110 §6.5.1).
func forbiddenInTrailer(k fieldKind) bool {
	switch k {
	case kindContentLength, kindTransferEncoding, kindTrailer, kindHost, kindLookalike:
		return true
	}
	return false
}

// parseContentLength accepts 1*DIGIT that fits in an int64. Leading zeros are
// legal; a sign, whitespace inside, a list or an empty value are not.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// validUpgrade checks protocol = token ["/" token] list syntax (RFC 9110
// §7.8). The value is forwarded when the proxy tunnels, so it must be clean.
func validUpgrade(v []byte) bool {
	for list := v; ; {
		e, rest, more := cutElement(list)
		if len(e) > 0 {
			name := e
			if i := bytes.IndexByte(e, '/'); i >= 0 {
				name = e[:i]
				if !isToken(e[i+1:]) {
					return false
				}
			}
			if !isToken(name) {
				return false
			}
		}
		if !more {
			return true
		}
		list = rest
	}
}
