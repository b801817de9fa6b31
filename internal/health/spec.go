package health

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Spec is one check's configuration, already defaulted and validated by
// the caller (NewChecker still rejects what it cannot run).
type Spec struct {
	Type     string        // "tcp" | "http" | "https" | "udp" | "exec"
	Interval time.Duration // between the end of one check and the start of the next
	Timeout  time.Duration // bounds one check
	// Jitter: each wait is Interval + rand[0, Jitter) so that checks of
	// many backends do not run in lockstep.
	Jitter time.Duration
	// Rise consecutive successes bring a probe up, Fall consecutive
	// failures take it down.
	Rise, Fall int
	// InitialUp is the state of a new probe before its first verdict.
	InitialUp bool

	// http and https (ldirectord's negotiate, keepalived's HTTP_GET).
	Method string // default GET
	Path   string // default /
	// Host is the Host header (ldirectord's virtualhost=); default the
	// target address.
	Host         string
	ExpectStatus []StatusRange // default 200-399
	ExpectBody   string        // must occur in the first 64 KiB; "" = any
	ExpectRegex  *regexp.Regexp
	// TLSSkipVerify and SNI apply to https. SNI defaults to Host when Host
	// is a name.
	TLSSkipVerify bool
	SNI           string

	// udp: Send is the datagram; Expect, if not empty, must occur in the
	// reply (any reply counts otherwise).
	Send, Expect []byte

	// exec (mon monitors, keepalived MISC_CHECK): argv; exit 0 = up.
	Command []string
}

// StatusRange is an inclusive range of accepted HTTP statuses.
type StatusRange struct{ Lo, Hi int }

func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi)
}

// defaultStatus is what ldirectord and HAProxy accept: anything but an
// error, and a redirect is not followed.
var defaultStatus = []StatusRange{{200, 399}}

// ParseStatusRanges parses accepted statuses written "200", "2xx" or
// "200-299".
func ParseStatusRanges(ss []string) ([]StatusRange, error) {
	out := make([]StatusRange, 0, len(ss))
	for _, s := range ss {
		r, ok := parseStatusRange(strings.TrimSpace(s))
		if !ok {
			return nil, fmt.Errorf("expect_status %q: want a status like \"200\", \"2xx\" or \"200-299\" (100-599)", s)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseStatusRange(s string) (StatusRange, bool) {
	if len(s) == 3 && (s[1:] == "xx" || s[1:] == "XX") {
		c := int(s[0] - '0')
		if c < 1 || c > 5 {
			return StatusRange{}, false
		}
		return StatusRange{c * 100, c*100 + 99}, true
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, ok1 := parseStatus(lo)
	h, ok2 := parseStatus(hi)
	if !ok1 || !ok2 || l > h {
		return StatusRange{}, false
	}
	return StatusRange{l, h}, true
}

func parseStatus(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 100 && n <= 599
}

func statusOK(rs []StatusRange, code int) bool {
	return slices.ContainsFunc(rs, func(r StatusRange) bool { return code >= r.Lo && code <= r.Hi })
}

func statusWant(rs []StatusRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, " or ")
}

var checkTypes = []string{"tcp", "http", "https", "udp", "exec"}

// withDefaults fills what the caller may leave empty, so that two specs
// that check the same thing also look the same to the dedupe key.
func (s Spec) withDefaults() Spec {
	if s.Type == "http" || s.Type == "https" {
		if s.Method == "" {
			s.Method = "GET"
		}
		if s.Path == "" {
			s.Path = "/"
		}
		if len(s.ExpectStatus) == 0 {
			s.ExpectStatus = defaultStatus
		}
	}
	return s
}

// validate reports every problem that would make the spec impossible to
// run, all at once.
func (s Spec) validate() error {
	var errs []error
	if !slices.Contains(checkTypes, s.Type) {
		errs = append(errs, fmt.Errorf("check type %q: want one of %s", s.Type, strings.Join(checkTypes, ", ")))
	}
	if s.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s: want above 0", s.Interval))
	}
	if s.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %s: want above 0", s.Timeout))
	}
	if s.Jitter < 0 {
		errs = append(errs, fmt.Errorf("jitter %s: want 0 or more", s.Jitter))
	}
	if s.Rise < 1 || s.Fall < 1 {
		errs = append(errs, fmt.Errorf("rise %d, fall %d: want at least 1", s.Rise, s.Fall))
	}
	switch s.Type {
	case "http", "https":
		if strings.ContainsAny(s.Method, " \t\r\n") {
			errs = append(errs, fmt.Errorf("method %q: want an HTTP method like GET", s.Method))
		}
		if !strings.HasPrefix(s.Path, "/") {
			errs = append(errs, fmt.Errorf("path %q: want a path starting with /", s.Path))
		}
		for _, r := range s.ExpectStatus {
			if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
				errs = append(errs, fmt.Errorf("expect_status %s: want a range within 100-599", r))
			}
		}
	case "udp":
		if len(s.Send) == 0 {
			errs = append(errs, errors.New("udp check: want a datagram to send"))
		}
	case "exec":
		if len(s.Command) == 0 || s.Command[0] == "" {
			errs = append(errs, errors.New("exec check: want a command"))
		}
	}
	return errors.Join(errs...)
}

// fingerprint identifies what a spec checks and how often. InitialUp is
// left out: it only matters when a probe is born, and a reload that flips
// it must not reset the health of a probe that already has a verdict.
func (s Spec) fingerprint() string {
	s = s.withDefaults()
	var b strings.Builder
	field := func(v string) {
		b.WriteString(strconv.Quote(v))
		b.WriteByte(' ')
	}
	field(s.Type)
	field(s.Interval.String())
	field(s.Timeout.String())
	field(s.Jitter.String())
	field(strconv.Itoa(s.Rise))
	field(strconv.Itoa(s.Fall))
	field(s.Method)
	field(s.Path)
	field(s.Host)
	field(statusWant(s.ExpectStatus))
	field(s.ExpectBody)
	if s.ExpectRegex != nil {
		field(s.ExpectRegex.String())
	} else {
		field("")
	}
	field(strconv.FormatBool(s.TLSSkipVerify))
	field(s.SNI)
	field(string(s.Send))
	field(string(s.Expect))
	field(strconv.Itoa(len(s.Command)))
	for _, a := range s.Command {
		field(a)
	}
	return b.String()
}

// Target is what a check probes.
type Target struct {
	// Addr is where the check goes: the backend's address or the check's
	// address/port override.
	Addr netip.AddrPort
	// Backend is the real backend, for the exec environment.
	Backend netip.AddrPort
	// Service names the service for the exec environment and logs; ""
	// when the probe serves several.
	Service string
}
