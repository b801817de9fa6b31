package health

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Spec is one check's configuration as the config file gives it, defaulted
// by the caller. NewChecker validates it with the check type's registration
// (registry.go) and rejects what it cannot run.
type Spec struct {
	Type     string        // a registered type: "tcp", "http", "https", "udp", "exec"
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
	Method string // "" is GET
	Path   string // "" is /
	// Host is the Host header (ldirectord's virtualhost=); default the
	// target address.
	Host string
	// ExpectStatus are accepted statuses written "200", "2xx" or
	// "200-399"; none is 200-399.
	ExpectStatus []string
	ExpectBody   string // must occur in the first 64 KiB; "" = any
	ExpectRegex  string // must match the first 64 KiB (Go syntax); "" = any
	// TLSSkipVerify and SNI apply to https. SNI defaults to Host when Host
	// is a name.
	TLSSkipVerify bool
	SNI           string

	// tcp and udp: Send is written after connecting (tcp) or is the
	// datagram (udp); Expect, if not empty, must occur in the reply.
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

// parseStatusRanges parses accepted statuses written "200", "2xx" or
// "200-299".
func parseStatusRanges(ss []string) ([]StatusRange, error) {
	out := make([]StatusRange, 0, len(ss))
	for _, s := range ss {
		r, ok := parseStatusRange(strings.TrimSpace(s))
		if !ok {
			return nil, fmt.Errorf("expect_status %q: %s", s, statusSyntax)
		}
		out = append(out, r)
	}
	return out, nil
}

const statusSyntax = `want statuses like "200", "2xx" or "200-399"`

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

// validateCommon reports the problems of the keys every check type has.
func (s *Spec) validateCommon() []FieldError {
	var errs []FieldError
	if s.Interval <= 0 {
		errs = append(errs, FieldError{"interval", fmt.Sprintf("want a duration above 0, got %s", s.Interval)})
	}
	if s.Timeout <= 0 {
		errs = append(errs, FieldError{"timeout", fmt.Sprintf("want a duration above 0, got %s", s.Timeout)})
	}
	if s.Rise < 1 || s.Rise > 100 {
		errs = append(errs, FieldError{"rise", fmt.Sprintf("want 1-100, got %d", s.Rise)})
	}
	if s.Fall < 1 || s.Fall > 100 {
		errs = append(errs, FieldError{"fall", fmt.Sprintf("want 1-100, got %d", s.Fall)})
	}
	if s.Jitter < 0 {
		errs = append(errs, FieldError{"jitter", fmt.Sprintf("want a non-negative duration, got %s", s.Jitter)})
	}
	return errs
}

// fingerprint identifies what a spec checks and how often, as given (the
// config spells every default out, so two specs that check the same thing
// look the same). InitialUp is left out: it only matters when a probe is born, and a reload that flips
// it must not reset the health of a probe that already has a verdict.
func (s Spec) fingerprint() string {
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
	field(strings.Join(s.ExpectStatus, ","))
	field(s.ExpectBody)
	field(s.ExpectRegex)
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
