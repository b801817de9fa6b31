package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/internal/health"
)

const healthService = `services:
  - name: web
    listen: 10.0.0.1:80
    health:
      type: http
      path: /ldirector.html
      expect_body: Test Page
      interval: 5s
      passive: { failures: 3 }
    quiescent: false
    slow_start: 30s
    backends:
      - { address: 10.0.0.11:80 }
      - { address: 10.0.0.12:80, health: { port: 8080, host: www.example.com } }
      - { address: 10.0.0.13:80, health: { type: tcp, fall: 1 } }
`

func TestHealthDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	c := mustParse(t, healthService)
	s := &c.Services[0]
	want := Health{
		Type: "http", Interval: Duration(5 * time.Second), Timeout: Duration(2 * time.Second),
		Rise: 2, Fall: 3, Jitter: Duration(500 * time.Millisecond), Initial: "up",
		Method: "GET", Path: "/ldirector.html", ExpectStatus: []string{"200-399"}, ExpectBody: "Test Page",
		Passive: Passive{Failures: 3},
	}
	if diff := cmp.Diff(&want, s.EffectiveHealth(0)); diff != "" {
		t.Errorf("backend 0 health (-want +got):\n%s", diff)
	}
	w1 := want
	w1.Port, w1.Host = 8080, "www.example.com"
	if diff := cmp.Diff(&w1, s.EffectiveHealth(1)); diff != "" {
		t.Errorf("backend 1 health (-want +got):\n%s", diff)
	}
	// Switching the type keeps the http keys inherited from the service;
	// the checker for tcp ignores them.
	if h := s.EffectiveHealth(2); h.Type != "tcp" || h.Fall != 1 || h.Rise != 2 {
		t.Errorf("backend 2 health: got type %s fall %d rise %d, want tcp 1 2", h.Type, h.Fall, h.Rise)
	}
	if s.QuiescentValue() {
		t.Errorf("quiescent: got true, want false as configured")
	}
	if s.SlowStart.D() != 30*time.Second || s.RemovalGrace.D() != defaultRemovalGrace {
		t.Errorf("slow_start %s removal_grace %s, want 30s and the default", s.SlowStart, s.RemovalGrace)
	}
	if mustParse(t, okService).Services[0].EffectiveHealth(0) != nil {
		t.Errorf("no health block: got a health spec, want nil")
	}
	if !mustParse(t, okService).Services[0].QuiescentValue() {
		t.Errorf("quiescent default: got false, want true (ldirectord's default)")
	}
}

func TestAlertDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, okService+"alerts:\n  - exec: [/usr/local/bin/lvs.alert]\n  - { name: hook, webhook: \"http://127.0.0.1:9/x\", max_per_minute: 5, services: [ok], events: [backend] }\n")
	want := []Alert{
		{Name: "alert-0", Exec: []string{"/usr/local/bin/lvs.alert"}, Timeout: Duration(10 * time.Second), MaxPerMinute: 60},
		{Name: "hook", Webhook: "http://127.0.0.1:9/x", Timeout: Duration(10 * time.Second), MaxPerMinute: 5, Services: []string{"ok"}, Events: []string{"backend"}},
	}
	if diff := cmp.Diff(want, c.Alerts); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestHealthErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{
			name: "health values",
			yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    health: { type: ftp, interval: 0s, rise: 0, fall: 101, initial: maybe, address: example.com, port: 70000 }
    backends: [{ address: 10.0.0.11:80 }]
`,
			want: []string{
				`f.yaml:4:21: services[0].health.type: unknown value "ftp"; want "exec", "http", "https", "ping", "tcp" or "udp"`,
				`f.yaml:4:36: services[0].health.interval: want a duration above 0, got 0s`,
				`f.yaml:4:46: services[0].health.rise: want 1-100, got 0`,
				`f.yaml:4:55: services[0].health.fall: want 1-100, got 101`,
				`f.yaml:4:69: services[0].health.initial: unknown value "maybe"; want "up" or "down"`,
				`f.yaml:4:85: services[0].health.address: want a literal IP address, got "example.com"`,
				`f.yaml:4:104: services[0].health.port: want 1-65535 (0 keeps the backend's), got 70000`,
			},
		},
		{
			name: "http keys",
			yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    health: { type: http, path: ldirector.html, expect_status: [200, 6xx, 300-200], expect_regex: "(" }
    backends: [{ address: 10.0.0.11:80 }]
`,
			want: []string{
				`f.yaml:4:33: services[0].health.path: want a path starting with / and without spaces, got "ldirector.html"`,
				`f.yaml:4:64: services[0].health.expect_status: want statuses like "200", "2xx" or "200-399", got "6xx"`,
				`f.yaml:4:99: services[0].health.expect_regex: invalid regular expression: error parsing regexp: missing closing ): ` + "`(`",
			},
		},
		{
			name: "keys for another type, udp and exec requirements",
			yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    health: { type: tcp, path: /x }
    backends: [{ address: 10.0.0.11:80 }]
  - name: dns
    listen: 10.0.0.1:53
    protocol: udp
    health: { type: udp }
    backends: [{ address: 10.0.0.11:53 }, { address: 10.0.0.12:53, health: { type: exec } }]
`,
			want: []string{
				`f.yaml:4:32: services[0].health.path: applies to http and https checks only, not tcp`,
				`f.yaml:9:13: services[1].health.send: required for a udp check: the datagram to send`,
				`f.yaml:10:76: services[1].backends[1].health.command: required for an exec check: the program and its arguments`,
			},
		},
		{
			// Each type reads its own keys; another's is an error, not
			// silently ignored (send/expect on an http check, command on
			// tcp), whether the service or a backend gives it.
			name: "keys of other check types",
			yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    health: { type: http, send: "PING\r\n", expect: PONG }
    backends: [{ address: 10.0.0.11:80 }, { address: 10.0.0.12:80, health: { type: tcp, command: [/bin/true] } }]
  - name: dns
    listen: 10.0.0.1:53
    protocol: udp
    health: { type: udp, send: x, sni: example.com }
    backends: [{ address: 10.0.0.11:53 }, { address: 10.0.0.12:53, health: { type: exec, command: [/bin/true], expect: ok } }]
`,
			want: []string{
				`f.yaml:4:33: services[0].health.send: applies to tcp and udp checks only, not http`,
				`f.yaml:4:53: services[0].health.expect: applies to tcp and udp checks only, not http`,
				`f.yaml:5:98: services[0].backends[1].health.command: applies to exec checks only, not tcp`,
				`f.yaml:9:40: services[1].health.sni: applies to http and https checks only, not udp`,
				`f.yaml:10:120: services[1].backends[1].health.expect: applies to tcp and udp checks only, not exec`,
			},
		},
		{
			name: "backend override needs a service health block",
			yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    slow_start: -1
    backends: [{ address: 10.0.0.11:80, health: { port: 81 } }]
`,
			want: []string{
				`f.yaml:4:17: services[0].slow_start: want a non-negative duration, got "-1"`,
				`f.yaml:5:49: services[0].backends[0].health: a backend can only adjust the service's health checks; add a health block to the service`,
			},
		},
		{
			name: "alerts",
			yaml: okService + `alerts:
  - { name: a }
  - { exec: [""], webhook: "ftp://x", max_per_minute: 0, events: [vrrp], services: [nope] }
`,
			want: []string{
				`f.yaml:3:5: alerts[0]: want exec, webhook or both`,
				`f.yaml:4:13: alerts[1].exec: the program must not be empty`,
				`f.yaml:4:28: alerts[1].webhook: want an http:// or https:// URL, got "ftp://x"`,
				`f.yaml:4:55: alerts[1].max_per_minute: want at least 1, got 0`,
				`f.yaml:4:67: alerts[1].events[0]: unknown value "vrrp"; want "backend" or "ha"`,
				`f.yaml:4:85: alerts[1].services[0]: no service named "nope"`,
			},
		},
	})
}

// Every key a check type registers is a key of the health block, and
// Spec copies it: a key added to a registration cannot be left out of the
// config or of the copy.
func TestHealthSpecCopiesEveryTypeKey(t *testing.T) {
	t.Parallel()
	fs := fieldsOf(reflect.TypeFor[Health]())
	for _, key := range health.TypeKeys() {
		idx, ok := fs.byName[key]
		if !ok {
			t.Errorf("check type key %q (of %v): no such key in the health block", key, health.Owners(key))
			continue
		}
		var h Health
		f := reflect.ValueOf(&h).Elem().FieldByIndex(idx)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("key %q: no test value for a %s", key, f.Kind())
		}
		if diff := cmp.Diff(new(Health).Spec(), h.Spec()); diff == "" {
			t.Errorf("key %q: Spec does not copy it", key)
		}
	}
}

func TestTCPSendExpect(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `services:
  - name: redis
    listen: 10.0.0.1:6379
    health: { type: tcp, send: "PING\r\n", expect: "+PONG" }
    backends: [{ address: 10.0.0.11:6379 }]
`)
	s := c.Services[0].EffectiveHealth(0).Spec()
	if string(s.Send) != "PING\r\n" || string(s.Expect) != "+PONG" {
		t.Errorf("got send %q expect %q, want \"PING\\r\\n\" and \"+PONG\"", s.Send, s.Expect)
	}
	if _, err := health.NewChecker(s); err != nil {
		t.Errorf("NewChecker: %v", err)
	}
}

func TestFallbackHealth(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `services:
  - name: web
    listen: 10.0.0.1:80
    protocol: http
    health: { type: http, path: /ldirector.html, expect_body: Test Page, port: 8080, interval: 5s, fall: 4, initial: down, passive: { failures: 2 } }
    fallback: 127.0.0.1:8080
    backends: [{ address: 10.0.0.11:80 }]
  - name: dns
    listen: 10.0.0.1:53
    protocol: udp
    health: { type: udp, send: "q", expect: "a" }
    fallback: 127.0.0.1:53
    backends: [{ address: 10.0.0.11:53 }]
  - name: ntp
    listen: 10.0.0.1:123
    protocol: udp
    health: { type: exec, command: [/bin/true] }
    fallback: 127.0.0.1:123
    backends: [{ address: 10.0.0.11:123 }]
  - name: plain
    listen: 10.0.0.1:81
    fallback: 127.0.0.1:81
    backends: [{ address: 10.0.0.11:81 }]
`)
	web := c.Services[0].FallbackHealth()
	want := *c.Services[0].Health
	want.Type, want.Method, want.Path, want.ExpectStatus, want.ExpectBody = "tcp", "", "", nil, ""
	want.Port, want.Initial = 0, "up"
	if diff := cmp.Diff(&want, web); diff != "" {
		t.Errorf("http service's fallback check (-want +got):\n%s", diff)
	}
	if dns := c.Services[1].FallbackHealth(); dns == nil || dns.Type != "udp" || dns.Send != "q" || dns.Expect != "" {
		t.Errorf("udp service's fallback check: got %+v, want udp sending q, any reply", dns)
	}
	if ntp := c.Services[2].FallbackHealth(); ntp != nil {
		t.Errorf("udp service checked by exec: got fallback check %+v, want none", ntp)
	}
	if plain := c.Services[3].FallbackHealth(); plain != nil {
		t.Errorf("service without health: got fallback check %+v, want none", plain)
	}
}
