package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/health"
)

// Health configures the active checks of a service's backends: what
// ldirectord's checktype/request/receive, mon's monitors and keepalived's
// TCP_CHECK, HTTP_GET and MISC_CHECK do.
//
// A backend's own health block overrides the service's key by key: every
// key it gives replaces the service's, the others are inherited.
type Health struct {
	// Type is tcp (connect, and send/expect if given; default), http,
	// https, udp or exec. Keys of another type than this one are errors.
	Type string `yaml:"type"`
	// Interval between the end of one check and the start of the next;
	// default 2s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one check; default 2s.
	Timeout Duration `yaml:"timeout"`
	// Rise is how many consecutive successes bring a backend up; default 2.
	Rise int `yaml:"rise"`
	// Fall is how many consecutive failures take it down; default 3.
	Fall int `yaml:"fall"`
	// Jitter adds a random 0..jitter to every interval so checks of many
	// backends do not run in lockstep; default a tenth of the interval.
	Jitter Duration `yaml:"jitter"`
	// Initial is the state before the first verdict: up (default) or down.
	Initial string `yaml:"initial"`
	// Address and Port send the check elsewhere than the backend's own
	// address (ldirectord's checkport=). 0 and "" keep the backend's.
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`

	// http and https (ldirectord's negotiate, keepalived's HTTP_GET).
	Method string `yaml:"method"` // default GET
	Path   string `yaml:"path"`   // default /; ldirectord's request=
	// Host is the Host header (ldirectord's virtualhost=); default the
	// check address.
	Host string `yaml:"host"`
	// ExpectStatus lists accepted statuses: "200", "2xx", "200-399";
	// default 200-399.
	ExpectStatus []string `yaml:"expect_status,omitempty"`
	// ExpectBody must occur in the first 64 KiB of the body; ldirectord's
	// receive=.
	ExpectBody string `yaml:"expect_body"`
	// ExpectRegex must match the first 64 KiB of the body (Go syntax).
	ExpectRegex   string `yaml:"expect_regex"`
	TLSSkipVerify bool   `yaml:"tls_skip_verify"`
	SNI           string `yaml:"sni"`

	// tcp and udp. Send is written once connected (tcp; Piranha nanny's
	// send=) or is the datagram sent (udp, required). Expect, if given,
	// must occur as a substring in the reply within the timeout (tcp: in
	// its first 64 KiB; any reply counts for udp otherwise). A tcp check
	// with expect and no send reads the server's greeting (SMTP's 220).
	// YAML double-quoted strings write bytes as "\r\n" or "\x00".
	Send   string `yaml:"send"`
	Expect string `yaml:"expect"`

	// exec: the command and its arguments; exit status 0 means up. The
	// backend is in FULCRUM_BACKEND, FULCRUM_BACKEND_HOST,
	// FULCRUM_BACKEND_PORT, FULCRUM_CHECK_ADDR and FULCRUM_SERVICE.
	Command []string `yaml:"command,omitempty"`

	// Passive, when failures > 0, marks a backend down after that many
	// consecutive failed connects seen on real traffic; active checks
	// bring it back.
	Passive Passive `yaml:"passive"`
}

// Passive configures passive checks (errors seen on real traffic).
type Passive struct {
	// Failures is how many consecutive failures mark a backend down; 0
	// (default) turns passive checks off.
	Failures int `yaml:"failures"`
}

// Alert is one hook run on every event, like mon's alert/upalert or
// keepalived's notify scripts.
type Alert struct {
	// Name identifies the hook in logs and status; default alert-N.
	Name string `yaml:"name"`
	// Exec runs this command with the event in FULCRUM_* environment
	// variables and as JSON on stdin.
	Exec []string `yaml:"exec"`
	// Webhook receives the event as a JSON POST.
	Webhook string `yaml:"webhook"`
	// Timeout bounds one delivery; default 10s.
	Timeout Duration `yaml:"timeout"`
	// Events limits the hook to these kinds of event ("backend", "ha");
	// empty means all.
	Events []string `yaml:"events"`
	// Services limits the hook to these services; empty means all.
	Services []string `yaml:"services"`
	// MaxPerMinute rate-limits the hook; default 60. Events beyond it are
	// dropped and counted.
	MaxPerMinute int `yaml:"max_per_minute"`
}

// Health defaults, documented in docs/health.md and docs/config.md.
const (
	defaultHealthType     = "tcp"
	defaultHealthInterval = 2 * time.Second
	defaultHealthTimeout  = 2 * time.Second
	defaultHealthRise     = 2
	defaultHealthFall     = 3
	defaultHealthInitial  = "up"
	defaultRemovalGrace   = 10 * time.Second
	defaultAlertTimeout   = 10 * time.Second
	defaultAlertPerMinute = 60
)

var (
	healthInitials = []string{"up", "down"}
	alertEvents    = []string{"backend", "ha"}
)

// EffectiveHealth returns the health block that applies to backend j of s:
// the service's with the backend's keys laid over it. nil when neither has
// one.
func (s *Service) EffectiveHealth(j int) *Health { return s.healthFor(s.Backends[j].Health) }

// healthFor lays a backend's health keys over the service's.
func (s *Service) healthFor(over *Health) *Health {
	if s.Health == nil && over == nil {
		return nil
	}
	var h Health
	if s.Health != nil {
		h = *s.Health
	}
	if over != nil {
		h.overlay(over)
	}
	// A backend may switch the type; give the new type its defaults.
	h.typeDefaults(func(string) bool { return false })
	return &h
}

// FallbackHealth returns the check of s's fallback (sorry) server, nil
// when s has no fallback or no health block: the service's timings and
// passive setting, at the fallback's own address (the check's address and
// port are the backends'), starting up whatever initial says (backends
// that start down send clients to it while their first checks run). What
// it checks is that the server answers, not the backends' check page,
// which a sorry page does not serve (and it often answers 503): a connect
// for tcp and http services; for a udp service with a udp check, the same
// datagram, any reply counting. A udp service checked otherwise leaves its
// fallback unchecked.
func (s *Service) FallbackHealth() *Health {
	if s.Fallback == "" || s.Health == nil {
		return nil
	}
	h := *s.Health
	typ, send := "tcp", ""
	if s.Protocol == ProtoUDP {
		if h.Type != "udp" {
			return nil
		}
		typ, send = "udp", h.Send
	}
	// Every key of a check type goes, then the new type's defaults come.
	v := reflect.ValueOf(&h).Elem()
	fs := fieldsOf(v.Type())
	for _, key := range health.TypeKeys() {
		f := v.FieldByIndex(fs.byName[key])
		f.Set(reflect.Zero(f.Type()))
	}
	h.Type, h.Send = typ, send
	h.Address, h.Port, h.Initial = "", 0, "up"
	h.typeDefaults(func(string) bool { return false })
	return &h
}

// typeDefaults fills the keys of h's check type that are unset and not
// given (an empty list counts as left out), from the type's registration.
func (h *Health) typeDefaults(given func(key string) bool) {
	t := health.Lookup(h.Type)
	if t == nil {
		return
	}
	v := reflect.ValueOf(h).Elem()
	fs := fieldsOf(v.Type())
	for key, def := range t.Defaults {
		f := v.FieldByIndex(fs.byName[key])
		if !f.IsZero() || (f.Kind() != reflect.Slice && given(key)) {
			continue
		}
		d := reflect.ValueOf(def)
		if d.Kind() == reflect.Slice { // a copy: the registration's is shared
			d = reflect.AppendSlice(reflect.MakeSlice(d.Type(), 0, d.Len()), d)
		}
		f.Set(d)
	}
}

// Spec is the checker's view of an effective health block: its keys,
// copied one for one. The check type's registration in package health
// validates it and builds the checker.
func (h *Health) Spec() health.Spec {
	return health.Spec{
		Type:          h.Type,
		Interval:      h.Interval.D(),
		Timeout:       h.Timeout.D(),
		Jitter:        h.Jitter.D(),
		Rise:          h.Rise,
		Fall:          h.Fall,
		InitialUp:     h.Initial != "down",
		Method:        h.Method,
		Path:          h.Path,
		Host:          h.Host,
		ExpectStatus:  h.ExpectStatus,
		ExpectBody:    h.ExpectBody,
		ExpectRegex:   h.ExpectRegex,
		TLSSkipVerify: h.TLSSkipVerify,
		SNI:           h.SNI,
		Send:          []byte(h.Send),
		Expect:        []byte(h.Expect),
		Command:       h.Command,
	}
}

// overlay copies every non-zero key of o over h.
func (h *Health) overlay(o *Health) {
	setIf(&h.Type, o.Type)
	setIf(&h.Interval, o.Interval)
	setIf(&h.Timeout, o.Timeout)
	setIf(&h.Rise, o.Rise)
	setIf(&h.Fall, o.Fall)
	setIf(&h.Jitter, o.Jitter)
	setIf(&h.Initial, o.Initial)
	setIf(&h.Address, o.Address)
	setIf(&h.Port, o.Port)
	setIf(&h.Method, o.Method)
	setIf(&h.Path, o.Path)
	setIf(&h.Host, o.Host)
	if o.ExpectStatus != nil {
		h.ExpectStatus = o.ExpectStatus
	}
	setIf(&h.ExpectBody, o.ExpectBody)
	setIf(&h.ExpectRegex, o.ExpectRegex)
	setIf(&h.TLSSkipVerify, o.TLSSkipVerify)
	setIf(&h.SNI, o.SNI)
	setIf(&h.Send, o.Send)
	setIf(&h.Expect, o.Expect)
	if o.Command != nil {
		h.Command = o.Command
	}
	setIf(&h.Passive.Failures, o.Passive.Failures)
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// QuiescentValue reports whether a down backend is only quiesced (weight
// 0, its connections continue; the default, ldirectord's quiescent=yes)
// rather than removed.
func (s *Service) QuiescentValue() bool { return s.Quiescent == nil || *s.Quiescent }

// healthDefaults fills a service-level health block (backend overrides are
// filled when merged, from the service's).
func (c *Config) healthDefaults(h *Health, p string) {
	h.normalize()
	defaultTo(c, &h.Type, p+".type", defaultHealthType)
	defaultTo(c, &h.Interval, p+".interval", Duration(defaultHealthInterval))
	defaultTo(c, &h.Timeout, p+".timeout", Duration(defaultHealthTimeout))
	defaultTo(c, &h.Rise, p+".rise", defaultHealthRise)
	defaultTo(c, &h.Fall, p+".fall", defaultHealthFall)
	defaultTo(c, &h.Jitter, p+".jitter", h.Interval/10)
	defaultTo(c, &h.Initial, p+".initial", defaultHealthInitial)
	h.typeDefaults(func(key string) bool { return c.given(p + "." + key) })
}

// normalize makes an empty list the same as a left-out one, so that the
// effective config, which leaves empty lists out, reads back unchanged.
func (h *Health) normalize() {
	if len(h.Command) == 0 {
		h.Command = nil
	}
	if len(h.ExpectStatus) == 0 {
		h.ExpectStatus = nil
	}
}

func (c *Config) alertDefaults() {
	for i := range c.Alerts {
		a := &c.Alerts[i]
		p := "alerts[" + strconv.Itoa(i) + "]"
		defaultTo(c, &a.Name, p+".name", "alert-"+strconv.Itoa(i))
		defaultTo(c, &a.Timeout, p+".timeout", Duration(defaultAlertTimeout))
		defaultTo(c, &a.MaxPerMinute, p+".max_per_minute", defaultAlertPerMinute)
	}
}

// health checks the effective health of every backend of services[i]
// (errors point at the backend's key when the backend gave it, else at the
// service's).
func (k *checker) health(i int) {
	s := &k.c.Services[i]
	p := "services[" + strconv.Itoa(i) + "]"
	if s.SlowStart < 0 {
		k.errorf(p+".slow_start", "want a non-negative duration, got %s", s.SlowStart)
	}
	if s.RemovalGrace < 0 {
		k.errorf(p+".removal_grace", "want a non-negative duration, got %s", s.RemovalGrace)
	}
	seen := map[string]bool{}
	if s.Health != nil {
		k.healthBlock(p+".health", p+".health", s.Health, seen)
	}
	k.backendHealth(s, p, p+".backends", s.Backends, seen)
	if s.HTTP != nil && s.Protocol == ProtoHTTP {
		for r := range s.HTTP.Routes {
			k.backendHealth(s, p, p+".http.routes["+strconv.Itoa(r)+"].backends", s.HTTP.Routes[r].Backends, seen)
		}
	}
}

// backendHealth checks the health overrides of backends (at path bp) of
// the service at path p.
func (k *checker) backendHealth(s *Service, p, bp string, backends []Backend, seen map[string]bool) {
	for j := range backends {
		if backends[j].Health == nil {
			continue
		}
		own := bp + "[" + strconv.Itoa(j) + "].health"
		if s.Health == nil {
			k.errorf(own, "a backend can only adjust the service's health checks; add a health block to the service")
			continue
		}
		k.healthBlock(own, p+".health", s.healthFor(backends[j].Health), seen)
	}
}

// healthBlock checks one effective health block. own is the path of the
// block that may have given a key, base the service's; seen suppresses
// repeating an error about the service's keys for every backend.
func (k *checker) healthBlock(own, base string, h *Health, seen map[string]bool) {
	// An error goes to the key where it was given: the backend's, else
	// the service's; a key neither gave belongs to the backend's block
	// when the backend's overrides (a changed type) made it necessary.
	at := func(key string) string {
		if k.c.given(own+"."+key) || (own != base && !k.c.given(base+"."+key)) {
			return own + "." + key
		}
		return base + "." + key
	}
	errorf := func(key, format string, args ...any) {
		path := at(key)
		if seen[path] {
			return
		}
		seen[path] = true
		k.errorf(path, format, args...)
	}
	// The checker's own keys and the type's, as the type's registration
	// validates them.
	for _, fe := range health.Validate(h.Spec()) {
		errorf(fe.Key, "%s", fe.Msg)
	}
	if !slices.Contains(healthInitials, h.Initial) {
		errorf("initial", "unknown value %q; want \"up\" or \"down\"", h.Initial)
	}
	if h.Address != "" {
		if a, err := netip.ParseAddr(h.Address); err != nil || a.IsUnspecified() {
			errorf("address", "want a literal IP address, got %q", h.Address)
		}
	}
	if h.Port < 0 || h.Port > 65535 {
		errorf("port", "want 1-65535 (0 keeps the backend's), got %d", h.Port)
	}
	if t := health.Lookup(h.Type); t != nil {
		for _, key := range health.TypeKeys() {
			// A backend that switches the type inherits the service's keys
			// of the old type silently; only keys it gives itself are wrong.
			if !slices.Contains(t.Keys, key) && (k.c.given(own+"."+key) || (own == base && k.c.given(base+"."+key))) {
				errorf(key, "applies to %s checks only, not %s", andList(health.Owners(key)), h.Type)
			}
		}
	}
	if h.Passive.Failures < 0 || h.Passive.Failures > 1000 {
		errorf("passive.failures", "want 0 (off) to 1000, got %d", h.Passive.Failures)
	}
}

// andList joins items as "a, b and c".
func andList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func (k *checker) alerts() {
	for i := range k.c.Alerts {
		a := &k.c.Alerts[i]
		p := "alerts[" + strconv.Itoa(i) + "]"
		if len(a.Exec) == 0 && a.Webhook == "" {
			k.errorf(p, "want exec, webhook or both")
		}
		if len(a.Exec) > 0 && a.Exec[0] == "" {
			k.errorf(p+".exec", "the program must not be empty")
		}
		if a.Webhook != "" {
			u, err := url.Parse(a.Webhook)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				k.errorf(p+".webhook", "want an http:// or https:// URL, got %q", a.Webhook)
			}
		}
		if a.Timeout <= 0 {
			k.errorf(p+".timeout", "want a duration above 0, got %s", a.Timeout)
		}
		if a.MaxPerMinute < 1 {
			k.errorf(p+".max_per_minute", "want at least 1, got %d", a.MaxPerMinute)
		}
		for j, e := range a.Events {
			k.oneOf(fmt.Sprintf("%s.events[%d]", p, j), e, alertEvents)
		}
		for j, name := range a.Services {
			if k.c.Service(name) == nil && !k.c.isPool(name) {
				k.errorf(fmt.Sprintf("%s.services[%d]", p, j), "no service named %q", name)
			}
		}
	}
}

func quoteAll(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = strconv.Quote(s)
	}
	return out
}
