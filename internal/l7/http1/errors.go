package http1

import "errors"

// ErrIncomplete means the buffer holds the beginning of a valid head but not
// all of it: read more and parse again from the start.
var ErrIncomplete = errors.New("http1: incomplete message head")

// ErrHTTP2Preface is returned by ParseRequest when the connection starts with
// the HTTP/2 connection preface (prior knowledge h2c). Nothing is consumed, so
// the caller can hand the connection, buffer included, to an HTTP/2 server.
// Its Status is 505 for a caller that does not speak HTTP/2.
var ErrHTTP2Preface error = &requestErrors[codeH2Preface]

// Error is a rejected message. The proxy answers Status and closes the
// connection: a request that fails to parse must never be forwarded, because
// its framing is exactly what a smuggling attempt makes ambiguous.
type Error struct {
	// Status is the response to send: 400, 414, 417, 431, 501 or 505 for a
	// request; always 502 for a response from a backend.
	Status int
	text   string
	code   code
}

func (e *Error) Error() string { return e.text }

// Is reports whether target is an *Error of the same kind, so a request
// error and the response error for the same defect match each other.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.code == e.code
}

// code identifies a defect. Parsers return codes rather than errors so the
// hot path never builds an error value: the public functions turn a code into
// a pointer into a static table.
type code uint8

const (
	codeOK code = iota
	codeIncomplete
	codeH2Preface

	// Start line.
	codeBadRequestLine
	codeBadMethod
	codeBadTarget
	codeAsteriskNotOptions
	codeBadVersion
	codeUnsupportedVersion
	codeLineTooLong
	codeBadStatusLine
	codeBadStatus

	// Field lines.
	codeBareLF
	codeObsFold
	codeNoColon
	codeSpaceBeforeColon
	codeBadFieldName
	codeBadFieldValue
	codeFramingLookalike
	codeHeadTooLarge
	codeTooManyFields

	// Framing and connection management.
	codeCLWithTE
	codeBadContentLength
	codeConflictingContentLength
	codeTENotChunked
	codeBadTE
	codeUnsupportedTE
	codeTEInHTTP10
	codeBadConnection
	codeBadUpgrade
	codeBadTrailerDecl
	codeBadExpect

	// Host.
	codeMissingHost
	codeMultipleHost
	codeBadHost
	codeHostMismatch

	// Chunked body.
	codeBadChunkSize
	codeChunkSizeOverflow
	codeBadChunkExt
	codeChunkLineTooLong
	codeBadChunkEnd
	codeChunkOverhead
	codeBadTrailerField

	numCodes
)

var codeInfo = [numCodes]struct {
	status int
	text   string
}{
	codeOK:         {0, "ok"},
	codeIncomplete: {0, "incomplete message head"},
	codeH2Preface:  {505, "HTTP/2 connection preface"},

	codeBadRequestLine:     {400, "malformed request line"},
	codeBadMethod:          {400, "method is not a token"},
	codeBadTarget:          {400, "invalid request target"},
	codeAsteriskNotOptions: {400, "asterisk-form target with a method other than OPTIONS"},
	codeBadVersion:         {400, "malformed HTTP version"},
	codeUnsupportedVersion: {505, "HTTP version not supported"},
	codeLineTooLong:        {414, "start line too long"},
	codeBadStatusLine:      {400, "malformed status line"},
	codeBadStatus:          {400, "invalid status code"},

	codeBareLF:           {400, "line not terminated by CRLF"},
	codeObsFold:          {400, "obsolete line folding or whitespace before a field line"},
	codeNoColon:          {400, "field line without a colon"},
	codeSpaceBeforeColon: {400, "whitespace between field name and colon"},
	codeBadFieldName:     {400, "invalid byte in field name"},
	codeBadFieldValue:    {400, "invalid byte in field value"},
	codeFramingLookalike: {400, "field name mimics Content-Length or Transfer-Encoding"},
	codeHeadTooLarge:     {431, "header section too large"},
	codeTooManyFields:    {431, "too many header fields"},

	codeCLWithTE:                 {400, "both Content-Length and Transfer-Encoding"},
	codeBadContentLength:         {400, "invalid Content-Length"},
	codeConflictingContentLength: {400, "conflicting Content-Length fields"},
	codeTENotChunked:             {400, "final transfer coding is not chunked"},
	codeBadTE:                    {400, "malformed Transfer-Encoding"},
	codeUnsupportedTE:            {501, "transfer coding not implemented"},
	codeTEInHTTP10:               {400, "Transfer-Encoding in an HTTP/1.0 message"},
	codeBadConnection:            {400, "malformed Connection"},
	codeBadUpgrade:               {400, "malformed or repeated Upgrade"},
	codeBadTrailerDecl:           {400, "Trailer names a field not allowed in trailers"},
	codeBadExpect:                {417, "unsupported expectation"},

	codeMissingHost:  {400, "missing Host"},
	codeMultipleHost: {400, "more than one Host"},
	codeBadHost:      {400, "invalid Host"},
	codeHostMismatch: {400, "Host differs from the target's authority"},

	codeBadChunkSize:      {400, "invalid chunk size"},
	codeChunkSizeOverflow: {400, "chunk size overflows"},
	codeBadChunkExt:       {400, "invalid chunk extension"},
	codeChunkLineTooLong:  {400, "chunk size line too long"},
	codeBadChunkEnd:       {400, "chunk data not followed by CRLF"},
	codeChunkOverhead:     {400, "too much chunked encoding overhead"},
	codeBadTrailerField:   {400, "field not allowed in a trailer section"},
}

var (
	requestErrors  = buildErrors(false)
	responseErrors = buildErrors(true)
)

func buildErrors(response bool) (t [numCodes]Error) {
	for c := range t {
		info := codeInfo[c]
		t[c] = Error{Status: info.status, text: "http1: " + info.text, code: code(c)}
		if response {
			// A broken response is the backend's fault; the client sees a
			// bad gateway whatever the defect.
			t[c].Status = 502
			t[c].text = "http1: response: " + info.text
		}
	}
	return t
}

func requestError(c code) error {
	if c == codeIncomplete {
		return ErrIncomplete
	}
	return &requestErrors[c]
}

func responseError(c code) error {
	if c == codeIncomplete {
		return ErrIncomplete
	}
	return &responseErrors[c]
}
