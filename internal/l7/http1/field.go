package http1

import (
	"bytes"
	"encoding/binary"
)

// Field is one field line of a header or trailer section. Name and Value
// point into the buffer the message was parsed from, so they are valid only
// while that buffer is; Value has no leading or trailing whitespace.
type Field struct {
	Name, Value []byte
}

// MaxFields is the most field lines a Request or Response holds. They live in
// a fixed array inside the struct so that parsing never allocates.
const MaxFields = 100

// Limits bound a message head. A zero field takes its default.
type Limits struct {
	// MaxLine bounds the request line (or status line) without its CRLF.
	// Longer: 414.
	MaxLine int
	// MaxHeaderBytes bounds the whole head: start line, field lines and the
	// final CRLF. Larger: 431. A caller's read buffer must hold at least this
	// much, or ErrIncomplete could never turn into a verdict.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of field lines, at most MaxFields.
	// More: 431.
	MaxHeaders int
}

// Defaults for zero Limits fields: nginx's 8 KiB line buffer, and four of
// them for a head, which is room for the largest cookies browsers keep.
const (
	DefaultMaxLine        = 8 << 10
	DefaultMaxHeaderBytes = 32 << 10
)

func (l Limits) norm() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 || l.MaxHeaders > MaxFields {
		l.MaxHeaders = MaxFields
	}
	return l
}

// fieldKind marks the fields that framing, connection management or
// forwarding treat specially, so that the head writer never compares names
// again.
type fieldKind uint8

const (
	kindOther fieldKind = iota
	kindHost
	kindContentLength
	kindTransferEncoding
	kindConnection
	kindKeepAlive
	kindProxyConnection
	kindTE
	kindTrailer
	kindUpgrade
	kindExpect
	kindXForwardedFor
	kindXForwardedProto
	kindXForwardedHost
	kindForwarded
	kindXRealIP
	// kindLookalike is Content_Length or Transfer_Encoding.
	kindLookalike

	// kindListed is or-ed in when a Connection field names the field, which
	// makes it hop-by-hop.
	kindListed fieldKind = 0x80
)

// classify recognises special field names. The switch on length keeps the
// common case (a name that is not special) to one or two comparisons.
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return kindTE
		}
	case 4:
		if equalFold(name, "host") {
			return kindHost
		}
	case 6:
		if equalFold(name, "expect") {
			return kindExpect
		}
	case 7:
		switch lower[name[0]] {
		case 'u':
			if equalFold(name, "upgrade") {
				return kindUpgrade
			}
		case 't':
			if equalFold(name, "trailer") {
				return kindTrailer
			}
		}
	case 9:
		switch lower[name[0]] {
		case 'f':
			if equalFold(name, "forwarded") {
				return kindForwarded
			}
		case 'x':
			if equalFold(name, "x-real-ip") {
				return kindXRealIP
			}
		}
	case 10:
		switch lower[name[0]] {
		case 'c':
			if equalFold(name, "connection") {
				return kindConnection
			}
		case 'k':
			if equalFold(name, "keep-alive") {
				return kindKeepAlive
			}
		}
	case 14:
		if equalFold(name, "content-length") {
			return kindContentLength
		}
		if equalFoldUnderscore(name, "content-length") {
			return kindLookalike
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return kindXForwardedFor
		}
	case 16:
		switch lower[name[0]] {
		case 'p':
			if equalFold(name, "proxy-connection") {
				return kindProxyConnection
			}
		case 'x':
			if equalFold(name, "x-forwarded-host") {
				return kindXForwardedHost
			}
		}
	case 17:
		switch lower[name[0]] {
		case 't':
			if equalFold(name, "transfer-encoding") {
				return kindTransferEncoding
			}
			if equalFoldUnderscore(name, "transfer-encoding") {
				return kindLookalike
			}
		case 'x':
			if equalFold(name, "x-forwarded-proto") {
				return kindXForwardedProto
			}
		}
	}
	return kindOther
}

// splitField splits a field line (without its CRLF) into name and value.
// It is the single place that decides what a field line may contain, for
// headers and trailers alike.
func splitField(line []byte) (name, value []byte, c code) {
	if line[0] == ' ' || line[0] == '\t' {
		// obs-fold, or whitespace before the first field line: a recipient
		// that unfolds and one that does not see different fields.
		return nil, nil, codeObsFold
	}
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	if i == len(line) {
		return nil, nil, codeNoColon
	}
	switch line[i] {
	case ':':
	case ' ', '\t':
		// RFC 9112 §5.1 makes this a hard 400: some recipients strip the
		// whitespace and see a different field than those that do not.
		return nil, nil, codeSpaceBeforeColon
	default:
		return nil, nil, codeBadFieldName
	}
	if i == 0 {
		return nil, nil, codeBadFieldName
	}
	value = trimOWS(line[i+1:])
	if !validValue(value) {
		return nil, nil, codeBadFieldValue
	}
	return line[:i], value, codeOK
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasLess reports whether any byte of x is below n (n <= 128), eight bytes
// at a time; exact, though it does not say which byte.
func hasLess(x uint64, n byte) bool { return (x-lsb*uint64(n))&^x&msb != 0 }

// hasByte reports whether any byte of x equals b.
func hasByte(x uint64, b byte) bool {
	y := x ^ (lsb * uint64(b))
	return (y-lsb)&^y&msb != 0
}

// validValue reports whether v holds only field-vchar, SP and HTAB: no CR,
// LF, NUL or other control byte that a downstream parser might treat as a
// line end. Eight bytes are checked at once because field values are most of
// a head's bytes.
func validValue(v []byte) bool {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		if hasLess(x, 0x20) || hasByte(x, 0x7f) {
			for _, c := range v[i : i+8] {
				if !isValueByte[c] {
					return false
				}
			}
		}
	}
	for _, c := range v[i:] {
		if !isValueByte[c] {
			return false
		}
	}
	return true
}

// validVchars reports whether t holds only visible ASCII (0x21-0x7e), which
// is what a request target may contain.
func validVchars(t []byte) bool {
	i := 0
	for ; i+8 <= len(t); i += 8 {
		x := binary.LittleEndian.Uint64(t[i:])
		if hasLess(x, 0x21) || x&msb != 0 || hasByte(x, 0x7f) {
			return false
		}
	}
	for _, c := range t[i:] {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar[c] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// cutElement returns the first element of a comma-separated list, without
// surrounding whitespace, and whether more elements follow.
func cutElement(list []byte) (elem, rest []byte, more bool) {
	i := bytes.IndexByte(list, ',')
	if i < 0 {
		return trimOWS(list), nil, false
	}
	return trimOWS(list[:i]), list[i+1:], true
}

// equalFold compares b with s, which must be lower case, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower[b[i]] != s[i] {
			return false
		}
	}
	return true
}

// equalFoldUnderscore is equalFold that also matches '_' in b to '-' in s.
// CGI-style backends (PHP, WSGI, Rack) map both to the same variable, so
// Transfer_Encoding can reach them as Transfer-Encoding.
func equalFoldUnderscore(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if c := lower[b[i]]; c != s[i] && (c != '_' || s[i] != '-') {
			return false
		}
	}
	return true
}

// equalFoldBytes compares a and b ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lower[a[i]] != lower[b[i]] {
			return false
		}
	}
	return true
}

var (
	isTchar     [256]bool
	isValueByte [256]bool
	isRegName   [256]bool
	hexVal      [256]int8
	lower       [256]byte
)

func init() {
	for c := range 256 {
		b := byte(c)
		lower[c] = b
		if 'A' <= b && b <= 'Z' {
			lower[c] = b + 'a' - 'A'
		}
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		isTchar[c] = alnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
		// field-vchar, SP and HTAB; obs-text (0x80-0xff) stays legal.
		isValueByte[c] = b == '\t' || b >= 0x20 && b != 0x7f
		// reg-name without pct-encoded: unreserved and sub-delims.
		isRegName[c] = alnum || bytes.IndexByte([]byte("-._~!$&'()*+,;="), b) >= 0
		hexVal[c] = -1
		switch {
		case '0' <= b && b <= '9':
			hexVal[c] = int8(b - '0')
		case 'a' <= b && b <= 'f':
			hexVal[c] = int8(b - 'a' + 10)
		case 'A' <= b && b <= 'F':
			hexVal[c] = int8(b - 'A' + 10)
		}
	}
}
