package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
)

const (
	// maxChunkLine bounds a chunk-size line without its CRLF, extensions
	// included: what fits, with the CRLF, in net/http's 4 KiB reader, so
	// that nothing it refuses gets through here.
	maxChunkLine = 4094
	// maxTrailerBytes bounds the trailer section, final CRLF included. It
	// matches what net/http accepts with its default 4 KiB reader.
	maxTrailerBytes = 4096
	// maxChunkOverhead is how far the non-data bytes (size lines,
	// extensions, CRLFs) may run ahead of the data, beyond 16 bytes per
	// chunk plus twice the chunk's size: net/http's rule, which stops a
	// sender from making the proxy parse megabytes of extensions per byte
	// of data.
	maxChunkOverhead = 16 << 10
)

type chunkState uint8

const (
	stateSize chunkState = iota
	stateData
	stateDataEnd
	stateDone
)

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from a bufio.Reader
// positioned just after the head, and leaves it positioned just after the
// body, so the next message on the connection can be parsed from it.
//
// Read returns the data, never blocking once it has some, then io.EOF after
// the last chunk and the trailer section. Errors are io.ErrUnexpectedEOF for
// a truncated body, the reader's own errors, or an *Error (Status as for a
// request; a proxy reading a response body can only abort). A
// ChunkedReader is reused with Reset and then allocates nothing per chunk;
// it is not safe for concurrent use.
type ChunkedReader struct {
	br     *bufio.Reader
	lim    Limits
	state  chunkState
	left   int64 // data bytes left in the current chunk
	excess int64
	err    error

	trailerBuf  []byte
	trailerSpan [][4]int // name and value offsets into trailerBuf
	trailers    []Field
}

// NewChunkedReader returns a reader of the chunked body at the start of br.
// lim bounds the trailer section as it bounds a head (and at most 4 KiB).
func NewChunkedReader(br *bufio.Reader, lim Limits) *ChunkedReader {
	cr := &ChunkedReader{}
	cr.Reset(br, lim)
	return cr
}

// Reset makes cr read a new body from br, keeping its buffers.
func (cr *ChunkedReader) Reset(br *bufio.Reader, lim Limits) {
	*cr = ChunkedReader{
		br:          br,
		lim:         lim.norm(),
		trailerBuf:  cr.trailerBuf[:0],
		trailerSpan: cr.trailerSpan[:0],
		trailers:    cr.trailers[:0],
	}
}

// Trailers returns the trailer fields once Read has returned io.EOF. They
// stay valid until the next Reset. A proxy must not merge them into the
// header; fields that would change framing or routing (Content-Length,
// Transfer-Encoding, Trailer, Host) are rejected.
func (cr *ChunkedReader) Trailers() []Field { return cr.trailers }

func (cr *ChunkedReader) Read(p []byte) (int, error) {
	if len(p) == 0 && cr.state != stateDone {
		return 0, nil
	}
	for {
		switch cr.state {
		case stateSize:
			if err := cr.readSizeLine(); err != nil {
				return 0, cr.fail(err)
			}
		case stateData:
			if int64(len(p)) > cr.left {
				p = p[:cr.left]
			}
			n, err := cr.br.Read(p)
			cr.left -= int64(n)
			if cr.left == 0 {
				cr.state = stateDataEnd
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, cr.fail(err)
			}
			// Return what there is: a proxy relays it now rather than
			// waiting for a next chunk that may be seconds away.
			return n, nil
		case stateDataEnd:
			b, err := cr.br.Peek(2)
			if err != nil {
				return 0, cr.fail(eofUnexpected(err))
			}
			if b[0] != '\r' || b[1] != '\n' {
				return 0, cr.fail(&requestErrors[codeBadChunkEnd])
			}
			cr.br.Discard(2)
			cr.state = stateSize
		case stateDone:
			return 0, cr.err
		}
	}
}

// Ready reports whether the next Read returns without reading from the
// underlying connection: with data, the end of the body, or an error for
// framing already known to be malformed. A proxy flushes what it relayed
// before a Read that would wait, so a body streamed chunk by chunk reaches
// its reader chunk by chunk, and a body whose defect is already buffered
// is refused before any of it is flushed. It errs on the side of false (a
// needless flush), never of true.
func (cr *ChunkedReader) Ready() bool {
	n := cr.br.Buffered()
	switch cr.state {
	case stateDone:
		return true
	case stateData:
		return n > 0
	}
	b, _ := cr.br.Peek(n)
	if cr.state == stateDataEnd {
		if len(b) < 2 {
			return false // Read peeks at two bytes, waiting for both
		}
		if b[0] != '\r' || b[1] != '\n' {
			return true // Read fails at once
		}
		b = b[2:]
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return false
	}
	if i == 0 || b[i-1] != '\r' {
		return true // bare LF: Read fails at once
	}
	size, c := parseChunkLine(b[:i-1])
	switch {
	case c != codeOK:
		return true
	case size == 0:
		// Ready only without trailers, the common case; a trailer
		// section is not worth scanning for.
		return len(b) >= i+3 && b[i+1] == '\r' && b[i+2] == '\n'
	}
	return len(b) > i+1
}

func (cr *ChunkedReader) fail(err error) error {
	cr.state, cr.err = stateDone, err
	return err
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns the next line without its CRLF, insisting on the CR: a
// bare LF in chunked framing is what RFC 9112 errata 7633 refused to allow.
func (cr *ChunkedReader) readLine(tooLong code) ([]byte, error) {
	line, err := cr.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &requestErrors[tooLong]
		}
		return nil, eofUnexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, &requestErrors[codeBareLF]
	}
	return line[:len(line)-2], nil
}

func (cr *ChunkedReader) readSizeLine() error {
	line, err := cr.readLine(codeChunkLineTooLong)
	if err != nil {
		return err
	}
	if len(line) > maxChunkLine {
		return &requestErrors[codeChunkLineTooLong]
	}
	size, c := parseChunkLine(line)
	if c != codeOK {
		return &requestErrors[c]
	}
	cr.excess += int64(len(line)) + 2
	if size < 1<<40 {
		cr.excess -= 16 + 2*size
	} else {
		cr.excess = 0
	}
	cr.excess = max(cr.excess, 0)
	if cr.excess > maxChunkOverhead {
		return &requestErrors[codeChunkOverhead]
	}
	if size == 0 {
		if err := cr.readTrailers(); err != nil {
			return err
		}
		cr.state, cr.err = stateDone, io.EOF
		return nil
	}
	cr.state, cr.left = stateData, size
	return nil
}

// parseChunkLine parses chunk-size [chunk-ext]. The size is bare hex:
// whitespace before it, after it or before the first ';' is refused, since
// net/http does and a parser that trims it reads a different size from one
// that does not.
func parseChunkLine(line []byte) (int64, code) {
	var size uint64
	i := 0
	for ; i < len(line); i++ {
		v := hexVal[line[i]]
		if v < 0 {
			break
		}
		// 16 digits at most, leading zeros included, as net/http counts.
		if i == 16 || size > math.MaxInt64>>4 {
			return 0, codeChunkSizeOverflow
		}
		size = size<<4 | uint64(v)
	}
	if i == 0 {
		return 0, codeBadChunkSize
	}
	if i < len(line) {
		if line[i] != ';' {
			return 0, codeBadChunkSize
		}
		if !validChunkExt(line[i:]) {
			return 0, codeBadChunkExt
		}
	}
	return int64(size), codeOK
}

// validChunkExt checks *( BWS ";" BWS name [ BWS "=" BWS value ] ) with
// value a token or quoted-string (RFC 9112 §7.1.1). Extensions are dropped
// on re-encoding, but a malformed one could hide a CR or a second size from
// a laxer parser downstream of the client.
func validChunkExt(e []byte) bool {
	i := 0
	skipBWS := func() {
		for i < len(e) && (e[i] == ' ' || e[i] == '\t') {
			i++
		}
	}
	token := func() bool {
		s := i
		for i < len(e) && isTchar[e[i]] {
			i++
		}
		return i > s
	}
	for i < len(e) {
		skipBWS()
		if i == len(e) || e[i] != ';' {
			return false
		}
		i++
		skipBWS()
		if !token() {
			return false
		}
		skipBWS()
		if i < len(e) && e[i] == '=' {
			i++
			skipBWS()
			if i < len(e) && e[i] == '"' {
				if !quotedString(e, &i) {
					return false
				}
			} else if !token() {
				return false
			}
			skipBWS()
		}
		if i < len(e) && e[i] != ';' {
			return false
		}
		if i == len(e) && (e[i-1] == ' ' || e[i-1] == '\t') {
			// BWS comes before ';' or '=', never at the end of the line.
			return false
		}
	}
	return true
}

// quotedString advances *i over a quoted-string starting at e[*i].
func quotedString(e []byte, i *int) bool {
	j := *i + 1
	for j < len(e) {
		switch c := e[j]; {
		case c == '"':
			*i = j + 1
			return true
		case c == '\\':
			if j+1 == len(e) || !isValueByte[e[j+1]] {
				return false
			}
			j += 2
		case isValueByte[c]:
			j++
		default:
			return false
		}
	}
	return false
}

// readTrailers reads the trailer section into cr's own buffer, since the
// bufio.Reader's bytes are overwritten by the next read.
func (cr *ChunkedReader) readTrailers() error {
	limit := min(cr.lim.MaxHeaderBytes, maxTrailerBytes)
	total := 0
	for {
		line, err := cr.readLine(codeHeadTooLarge)
		if err != nil {
			return err
		}
		total += len(line) + 2
		if total > limit {
			return &requestErrors[codeHeadTooLarge]
		}
		if len(line) == 0 {
			break
		}
		name, value, c := splitField(line)
		if c != codeOK {
			return &requestErrors[c]
		}
		if forbiddenInTrailer(classify(name)) {
			return &requestErrors[codeBadTrailerField]
		}
		if len(cr.trailerSpan) == cr.lim.MaxHeaders {
			return &requestErrors[codeTooManyFields]
		}
		off := len(cr.trailerBuf)
		cr.trailerBuf = append(cr.trailerBuf, name...)
		cr.trailerBuf = append(cr.trailerBuf, value...)
		cr.trailerSpan = append(cr.trailerSpan, [4]int{off, off + len(name), off + len(name), off + len(name) + len(value)})
	}
	// Slices are taken only now: appending may have moved trailerBuf.
	for _, s := range cr.trailerSpan {
		cr.trailers = append(cr.trailers, Field{
			Name:  cr.trailerBuf[s[0]:s[1]:s[1]],
			Value: cr.trailerBuf[s[2]:s[3]:s[3]],
		})
	}
	return nil
}

// AppendChunk appends data as one chunk. Empty data appends nothing, since an
// empty chunk would end the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, int64(len(data)))
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendChunkHeader appends the size line of a chunk of size bytes (size >
// 0), for a caller that writes the data itself; it must follow the data
// with CRLF.
func AppendChunkHeader(dst []byte, size int64) []byte {
	dst = appendHex(dst, uint64(size))
	return append(dst, "\r\n"...)
}

// AppendLastChunk appends the last chunk and the trailer section. Fields
// that must not be trailers and hop-by-hop fields are left out.
func AppendLastChunk(dst []byte, trailers []Field) []byte {
	dst = append(dst, "0\r\n"...)
	for _, f := range trailers {
		switch k := classify(f.Name); {
		case forbiddenInTrailer(k):
		case k == kindConnection, k == kindKeepAlive, k == kindProxyConnection, k == kindTE, k == kindUpgrade:
		default:
			dst = appendField(dst, f.Name, f.Value)
		}
	}
	return append(dst, "\r\n"...)
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// ChunkedWriter encodes a body as chunks onto w, one chunk per Write. Give it
// a buffered writer: each Write makes three calls to w. It allocates nothing
// and is not safe for concurrent use.
type ChunkedWriter struct {
	w   io.Writer
	buf []byte
}

// NewChunkedWriter returns a ChunkedWriter writing to w.
func NewChunkedWriter(w io.Writer) *ChunkedWriter {
	return &ChunkedWriter{w: w, buf: make([]byte, 0, 64)}
}

// Reset makes cw write a new body to w.
func (cw *ChunkedWriter) Reset(w io.Writer) { cw.w = w }

// Write writes p as one chunk; an empty p writes nothing.
func (cw *ChunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	cw.buf = AppendChunkHeader(cw.buf[:0], int64(len(p)))
	if _, err := cw.w.Write(cw.buf); err != nil {
		return 0, err
	}
	n, err := cw.w.Write(p)
	if err != nil {
		return n, err
	}
	if _, err := cw.w.Write(crlf); err != nil {
		return n, err
	}
	return n, nil
}

// Close writes the last chunk, with no trailers. It does not close w.
func (cw *ChunkedWriter) Close() error { return cw.CloseWithTrailers(nil) }

// CloseWithTrailers writes the last chunk and the trailer section, filtered
// as by AppendLastChunk. It does not close w.
func (cw *ChunkedWriter) CloseWithTrailers(trailers []Field) error {
	cw.buf = AppendLastChunk(cw.buf[:0], trailers)
	_, err := cw.w.Write(cw.buf)
	return err
}

var _ io.WriteCloser = (*ChunkedWriter)(nil)
