// Package http1 is the HTTP/1.1 message codec of the L7 fast path: strict
// parsers for request and response heads, a chunked body reader and
// writer, and head writers that strip hop-by-hop fields and add the
// forwarding fields, all without allocating per message.
//
// # Use
//
// A connection owns a bufio.Reader at least Limits.MaxHeaderBytes large and
// one Request that it reuses. It parses what is buffered, peeking further
// while the head is incomplete:
//
//	buf, _ := br.Peek(br.Buffered())
//	n, err := http1.ParseRequest(buf, &req, lim)
//	// err == ErrIncomplete: br.Peek(len(buf)+1) to read more, parse again.
//	// *Error: answer err.Status, close.
//	// nil: req's slices point into br's buffer; forward
//	// AppendRequestHead(dst, &req, fw, conn), then br.Discard(n) and relay
//	// the body by req.BodyKind() (a ChunkedReader on br for chunked).
//
// The head's slices are valid until br reads again, so the head is
// re-encoded before the body is touched.
//
// # Strictness
//
// Anything that two HTTP implementations could frame differently is
// rejected rather than repaired, because a proxy that forwards what a
// backend reads differently lets a client smuggle a request past it. The
// request parser answers (the response parser answers 502 for all of
// these):
//
//	400  Content-Length together with Transfer-Encoding
//	400  Content-Length fields that are not byte-identical; a list, a sign,
//	     a non-digit, an empty value, a value above 2^63-1
//	400  a final transfer coding other than chunked (identity, xchunked,
//	     "chunked, identity"), chunked twice, empty list elements,
//	     parameters or quotes in Transfer-Encoding
//	501  any coding besides chunked (gzip, chunked)
//	400  Transfer-Encoding in an HTTP/1.0 message
//	400  Content_Length or Transfer_Encoding, which CGI-style backends read
//	     as the real thing
//	400  obs-fold, or whitespace before the first field line
//	400  whitespace between a field name and its colon
//	400  a field name that is not a token; a field value with a control
//	     byte (NUL, CR, LF, DEL, ESC...) other than HTAB
//	400  a line not ended by CRLF (bare LF, or CR before CRLF)
//	400  a request line with other than single spaces, or no version; a
//	     method that is not a token; a version not "HTTP/1.0" or
//	     "HTTP/1.1" in form (http/1.1, HTTP/1.10)
//	505  HTTP/x.y other than 1.0 and 1.1; ErrHTTP2Preface (also 505) for
//	     the HTTP/2 prior-knowledge preface
//	400  a target with bytes outside visible ASCII, a fragment, a bad
//	     %-escape in its path, a scheme other than http and https,
//	     userinfo, a %-escaped host, a bad port; "*" except with OPTIONS;
//	     CONNECT without host:port
//	400  no Host in HTTP/1.1, more than one Host, an invalid Host, a Host
//	     that differs from an absolute-form target's authority
//	417  an expectation other than 100-continue
//	400  a repeated or malformed Upgrade; a Connection element that is not
//	     a token; a Trailer that names Content-Length, Transfer-Encoding,
//	     Trailer or Host
//	414  a request line longer than Limits.MaxLine
//	431  a head larger than Limits.MaxHeaderBytes, more fields than
//	     Limits.MaxHeaders
//
// The chunked reader rejects a size that is not bare hex (whitespace, sign,
// 0x), more than 16 digits or above 2^63-1, malformed extensions, a bare LF
// or CR, data not followed by CRLF, size lines over 4 KiB, overhead
// out of proportion to the data, and trailer sections that break the field
// rules, exceed 4 KiB or carry Content-Length, Transfer-Encoding, Trailer
// or Host.
//
// Every message net/http rejects is rejected here too (the differential
// test checks it over the corpus in testdata/requests, and the fuzzer on
// any input); diff_test.go lists, with reasons, what this package rejects
// and net/http accepts.
package http1
