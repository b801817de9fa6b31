package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

func init() {
	for _, name := range []string{"http", "https"} {
		register(Type{
			Name: name,
			Keys: []string{"method", "path", "host", "expect_status", "expect_body", "expect_regex", "tls_skip_verify", "sni"},
			Defaults: map[string]any{
				"method":        "GET",
				"path":          "/",
				"expect_status": []string{"200-399"},
			},
			Validate: validateHTTP,
			New:      newHTTPChecker,
		})
	}
}

func validateHTTP(s *Spec) []FieldError {
	var errs []FieldError
	// "" is net/http's GET, and an empty path its "/".
	if strings.ContainsAny(s.Method, " \t\r\n") {
		errs = append(errs, FieldError{"method", fmt.Sprintf("want an HTTP method like GET, got %q", s.Method)})
	}
	if (s.Path != "" && !strings.HasPrefix(s.Path, "/")) || strings.ContainsAny(s.Path, " \t\r\n") {
		errs = append(errs, FieldError{"path", fmt.Sprintf("want a path starting with / and without spaces, got %q", s.Path)})
	}
	if strings.ContainsAny(s.Host, " \t\r\n") {
		errs = append(errs, FieldError{"host", fmt.Sprintf("want a host name without spaces, got %q", s.Host)})
	}
	for _, st := range s.ExpectStatus {
		if _, ok := parseStatusRange(strings.TrimSpace(st)); !ok {
			errs = append(errs, FieldError{"expect_status", fmt.Sprintf("%s, got %q", statusSyntax, st)})
		}
	}
	if s.ExpectRegex != "" {
		if _, err := regexp.Compile(s.ExpectRegex); err != nil {
			errs = append(errs, FieldError{"expect_regex", "invalid regular expression: " + err.Error()})
		}
	}
	return errs
}

// maxBody bounds what is read of a response for ExpectBody and
// ExpectRegex: enough for a status page, not a download.
const maxBody = 64 << 10

// httpChecker sends one request on a new connection and judges the status
// and the start of the body: ldirectord's negotiate, keepalived's
// HTTP_GET. A new connection per check, as ldirectord does, tests the
// accept path a real client takes, not a connection kept alive.
type httpChecker struct {
	spec   Spec
	scheme string
	client *http.Client
	status []StatusRange
	regex  *regexp.Regexp // nil: none
}

var _ Checker = (*httpChecker)(nil)

func newHTTPChecker(s Spec) (Checker, error) {
	status, err := parseStatusRanges(s.ExpectStatus)
	if err != nil {
		return nil, err
	}
	if len(status) == 0 {
		status = []StatusRange{{200, 399}} // ldirectord's and HAProxy's: anything but an error
	}
	var re *regexp.Regexp
	if s.ExpectRegex != "" {
		if re, err = regexp.Compile(s.ExpectRegex); err != nil {
			return nil, err
		}
	}
	tr := &http.Transport{
		// No Proxy: a proxy from the environment would check the proxy.
		DialContext:       (&net.Dialer{}).DialContext,
		DisableKeepAlives: true,
		// Compression would make ExpectBody match what Go decompressed,
		// and cost a gzip reader per check.
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxBody,
		TLSClientConfig: &tls.Config{
			ServerName:         serverName(s),
			InsecureSkipVerify: s.TLSSkipVerify,
		},
	}
	return &httpChecker{
		spec:   s,
		scheme: s.Type,
		status: status,
		regex:  re,
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer: judge its status, as ldirectord and
			// HAProxy do, rather than check whatever it points to.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// serverName is the TLS server name: SNI, else the Host header when it is
// a name. Empty leaves it to the transport, which verifies the certificate
// against the target's IP address and sends no SNI.
func serverName(s Spec) string {
	if s.SNI != "" {
		return s.SNI
	}
	h := s.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	return h
}

// Phases of a request, for the reason of a failure.
const (
	phaseConnect int32 = iota
	phaseTLS
	phaseResponse
)

func (c *httpChecker) Check(ctx context.Context, t Target) error {
	if !t.Addr.IsValid() {
		return errNoAddr
	}
	addr := t.Addr.String()
	var phase atomic.Int32 // written by the transport's goroutines
	trace := &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				phase.Store(phaseTLS)
			}
		},
		GotConn: func(httptrace.GotConnInfo) { phase.Store(phaseResponse) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace),
		c.spec.Method, c.scheme+"://"+addr+c.spec.Path, nil)
	if err != nil {
		return &checkError{reason: "request: " + err.Error(), err: err}
	}
	if c.spec.Host != "" {
		req.Host = c.spec.Host
	}
	req.Header.Set("User-Agent", "fulcrum-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		var where string
		switch phase.Load() {
		case phaseConnect:
			where = "connect " + addr
		case phaseTLS:
			where = "tls handshake with " + addr
			if c.scheme == "http" {
				where = "response from " + addr
			}
		default:
			where = "response from " + addr
		}
		return failure(ctx, where, c.spec.Timeout, err)
	}
	defer resp.Body.Close()
	if !statusOK(c.status, resp.StatusCode) {
		return &checkError{reason: "status " + strconv.Itoa(resp.StatusCode) + ", want " + statusWant(c.status)}
	}
	if c.spec.ExpectBody == "" && c.regex == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	// What arrived is judged even when the rest did not: a page that
	// shows the expected text and then stalls has answered.
	mismatch := c.bodyMismatch(body)
	if mismatch == "" {
		return nil
	}
	if err != nil {
		return failure(ctx, "body from "+addr, c.spec.Timeout, err)
	}
	return &checkError{reason: mismatch}
}

// bodyMismatch is why body fails the expectations, "" if it does not.
func (c *httpChecker) bodyMismatch(body []byte) string {
	if c.spec.ExpectBody != "" && !bytes.Contains(body, []byte(c.spec.ExpectBody)) {
		return "body lacks " + strconv.Quote(c.spec.ExpectBody)
	}
	if c.regex != nil && !c.regex.Match(body) {
		return "body does not match " + strconv.Quote(c.spec.ExpectRegex)
	}
	return ""
}
