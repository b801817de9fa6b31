package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// stricterThanNetHTTP lists the corpus messages that net/http accepts and we
// reject, each with the reason. TestDifferentialNetHTTP fails on a message
// net/http accepts that is not listed, and on a listed one it no longer
// accepts, so the list stays exact.
var stricterThanNetHTTP = map[string]string{
	// Framing. net/http drops Content-Length when Transfer-Encoding is
	// present (RFC 9112 §6.3 allows it); a proxy in front of a backend that
	// does the opposite is the textbook CL.TE desync, so we refuse.
	"400_cl-te.http": "Content-Length with Transfer-Encoding",
	"400_te-cl.http": "Content-Length with Transfer-Encoding",
	// net/http ignores Transfer-Encoding in HTTP/1.0 (golang.org/issue/12785)
	// and frames by Content-Length; RFC 9112 §6.1 says such framing is
	// faulty, and a backend that honours the chunked would disagree.
	"400_te-http10.http":         "Transfer-Encoding in HTTP/1.0",
	"400_te-http10-with-cl.http": "Transfer-Encoding in HTTP/1.0",
	// CGI-style backends map '_' to '-', so these reach them as framing
	// fields; net/http sees an unrelated field.
	"400_cl-underscore.http": "Content_Length mimics Content-Length",
	"400_te-underscore.http": "Transfer_Encoding mimics Transfer-Encoding",

	// Field syntax. net/http unfolds obs-fold; RFC 9112 §5.2 lets a server
	// reject it, and a proxy must, since a backend that does not unfold sees
	// a different field.
	"400_obs-fold.http":             "obs-fold",
	"400_obs-fold-tab.http":         "obs-fold",
	"400_whitespace-only-line.http": "obs-fold (an empty continuation line)",
	"400_te-obs-fold.http":          "obs-fold hiding Transfer-Encoding's value",
	// net/http keeps "Transfer-Encoding " (space before the colon) as a
	// field of that name (golang.org/issue/34540), so it frames
	// te-space-before-colon as bodiless while a backend that strips the
	// space sees chunked: RFC 9112 §5.1 requires 400.
	"400_space-before-colon.http":      "whitespace before colon",
	"400_host-space-before-colon.http": "whitespace before colon",
	"400_te-space-before-colon.http":   "whitespace before colon",
	// net/http accepts LF alone as a line end (RFC 9112 §2.2 allows a
	// recipient to); a backend that does not splits the head differently.
	"400_bare-lf-field.http":          "bare LF",
	"400_bare-lf-end.http":            "bare LF",
	"400_bare-lf-everywhere.http":     "bare LF",
	"400_bare-lf-request-line.http":   "bare LF",
	"400_te-smuggled-by-bare-lf.http": "bare LF (hiding Transfer-Encoding from a CRLF-only parser)",

	// Request line. net/http accepts any HTTP/x.y in ReadRequest (its
	// server answers 505 later); we answer 505 directly, and the h2c
	// preface gets its own error so the caller can route it.
	"505_version-1.2.http":           "version other than 1.0/1.1",
	"505_version-2.0.http":           "version other than 1.0/1.1",
	"505_version-0.9.http":           "version other than 1.0/1.1",
	"505_h2-preface.http":            "HTTP/2 preface",
	"505_h2-preface-wrong-tail.http": "version other than 1.0/1.1",
	// net/http's URL parser accepts raw UTF-8 in paths; RFC 3986 does not,
	// and it is where path-based routing and the backend's normalisation
	// part ways.
	"400_target-non-ascii.http": "non-ASCII target",
	// A fragment has no place in a request target; HAProxy accepted one
	// until CVE-2023-45539 showed path rules bypassed with it.
	"400_target-fragment.http": "fragment in target",
	// net/http accepts "*" with any method and CONNECT with a path (for
	// net/rpc); RFC 9112 §3.2.3-4 ties each form to its method.
	"400_asterisk-with-get.http":        "asterisk-form with GET",
	"400_connect-origin-form.http":      "CONNECT with origin-form",
	"400_connect-no-port.http":          "CONNECT authority without port",
	"400_absolute-other-scheme.http":    "absolute-form with a non-http scheme",
	"400_absolute-empty-authority.http": "absolute-form without a host",
	// Userinfo is deprecated for http (RFC 9110 §4.2.4) and a phishing and
	// routing-confusion vector.
	"400_absolute-userinfo.http":   "userinfo in target",
	"400_absolute-port-range.http": "port above 65535",
	// RFC 9112 §3.2.2 makes the target's authority win over Host; a proxy
	// that routes on one while the backend reads the other is confused.
	"400_absolute-host-mismatch.http": "Host differs from absolute-form authority",
	"400_connect-host-mismatch.http":  "Host differs from CONNECT authority",

	// Host. net/http.ReadRequest leaves these to its server (which answers
	// 400 for all of them but host-userinfo and host-list); a proxy must
	// decide before routing.
	"400_host-missing.http":          "missing Host in HTTP/1.1",
	"400_absolute-host-missing.http": "missing Host in HTTP/1.1",
	"400_host-space.http":            "invalid Host",
	"400_host-slash.http":            "invalid Host",
	"400_host-userinfo.http":         "invalid Host",
	"400_host-list.http":             "invalid Host",
	"400_host-unclosed-bracket.http": "invalid Host",
	"400_host-pct-encoded.http":      "pct-encoded Host",

	// Fields a proxy interprets, which net/http passes through unread.
	"417_expect-unknown.http":       "unknown expectation (net/http's server answers 417 too)",
	"400_upgrade-twice.http":        "two Upgrade fields",
	"400_upgrade-malformed.http":    "Upgrade not a protocol list",
	"400_connection-not-token.http": "Connection element not a token",

	// Limits: net/http.ReadRequest has none of its own.
	"414_line-too-long.http":   "request line over the limit",
	"431_head-too-large.http":  "head over the limit",
	"431_too-many-fields.http": "more fields than the limit",
}

// TestDifferentialNetHTTP runs every request in testdata/requests through
// net/http's parser and ours. Whatever net/http rejects we must reject;
// whatever both accept must mean the same request.
func TestDifferentialNetHTTP(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, f := range readCorpus(t, filepath.Join("testdata", "requests")) {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			goReq, goBody, goErr := netHTTPParse(f.data)
			ours, ourBody, ourErr := ourParse(f.data)
			reason, listed := stricterThanNetHTTP[f.name]
			switch {
			case goErr != nil && ourErr == nil:
				t.Fatalf("net/http rejects (%v), we accept", goErr)
			case goErr == nil && ourErr != nil && !listed:
				t.Fatalf("net/http accepts, we reject (%v): add to stricterThanNetHTTP with the reason, or accept it", ourErr)
			case listed && (goErr != nil || ourErr == nil):
				t.Fatalf("listed as stricter (%s), but net/http err=%v, ours err=%v", reason, goErr, ourErr)
			case goErr != nil:
				return // both reject
			case ourErr != nil:
				return // listed
			}
			if got, want := string(ours.Method), goReq.Method; got != want {
				t.Errorf("method: got %q, net/http %q", got, want)
			}
			if got, want := string(ours.Target), goReq.RequestURI; got != want {
				t.Errorf("target: got %q, net/http %q", got, want)
			}
			if got, want := string(ours.Host), goReq.Host; got != want {
				t.Errorf("host: got %q, net/http %q", got, want)
			}
			chunked := len(goReq.TransferEncoding) > 0 && goReq.TransferEncoding[0] == "chunked"
			if ours.Chunked != chunked {
				t.Errorf("chunked: got %v, net/http %v", ours.Chunked, chunked)
			}
			// net/http reports 0 for "no Content-Length" and -1 for chunked.
			cl := ours.ContentLength
			if cl < 0 && !ours.Chunked {
				cl = 0
			}
			if cl != goReq.ContentLength {
				t.Errorf("content length: got %d, net/http %d", cl, goReq.ContentLength)
			}
			if ours.Close != goReq.Close {
				t.Errorf("close: got %v, net/http %v", ours.Close, goReq.Close)
			}
			if chunked && !bytes.Equal(ourBody, goBody) {
				t.Errorf("chunked body: got %q, net/http %q", ourBody, goBody)
			}
		})
		seen[f.name] = true
	}
	for name := range stricterThanNetHTTP {
		if !seen[name] {
			t.Errorf("stricterThanNetHTTP lists %s, which is not in the corpus", name)
		}
	}
}

// netHTTPParse is net/http's verdict on a message: the head, and for a
// chunked request the body. Content-Length bodies are not read: the codec
// only reports their length.
func netHTTPParse(msg []byte) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return nil, nil, err
	}
	var body []byte
	if len(req.TransferEncoding) > 0 {
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, nil, err
		}
	}
	return req, body, nil
}

func ourParse(msg []byte) (*Request, []byte, error) {
	r := new(Request)
	n, err := ParseRequest(msg, r, Limits{})
	if err != nil {
		return nil, nil, err
	}
	var body []byte
	if r.Chunked {
		cr := NewChunkedReader(bufio.NewReader(bytes.NewReader(msg[n:])), Limits{})
		if body, err = io.ReadAll(cr); err != nil {
			return nil, nil, err
		}
	}
	return r, body, nil
}

// netHTTPAgrees is the property FuzzParseRequest checks on every input we
// accept: net/http accepts it too, and reads the same request.
func netHTTPAgrees(msg []byte, ours *Request, ourBody []byte) error {
	goReq, goBody, err := netHTTPParse(msg)
	if err != nil {
		return errors.New("net/http rejects what we accept: " + err.Error())
	}
	var diffs []string
	if string(ours.Method) != goReq.Method {
		diffs = append(diffs, "method")
	}
	if string(ours.Target) != goReq.RequestURI {
		diffs = append(diffs, "target")
	}
	if string(ours.Host) != goReq.Host {
		diffs = append(diffs, "host")
	}
	chunked := len(goReq.TransferEncoding) > 0
	if ours.Chunked != chunked {
		diffs = append(diffs, "chunked")
	}
	cl := ours.ContentLength
	if cl < 0 && !ours.Chunked {
		cl = 0
	}
	if cl != goReq.ContentLength {
		diffs = append(diffs, "content length")
	}
	if chunked && !bytes.Equal(ourBody, goBody) {
		diffs = append(diffs, "chunked body")
	}
	if len(diffs) > 0 {
		return errors.New("net/http reads a different " + strings.Join(diffs, ", "))
	}
	return nil
}
