package config

import (
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

var validateCases = []errorCase{
	{
		name: "empty file",
		yaml: "",
		want: []string{`f.yaml: services: no services; define at least one`},
	},
	{
		name: "only comments",
		yaml: "# nothing yet\n\n# really\n",
		want: []string{`f.yaml: services: no services; define at least one`},
	},
	{
		name: "empty services",
		yaml: "node: { name: lb1 }\nservices: []\n",
		want: []string{`f.yaml:2:11: services: no services; define at least one`},
	},
	{
		name: "invalid node name",
		yaml: "node: { name: lb 1 }\n" + okService,
		want: []string{`f.yaml:1:15: node.name: invalid name "lb 1": want letters, digits, '_', '.' and '-', starting with a letter or digit`},
	},
	{
		name: "empty node name",
		yaml: "node: { name: \"\" }\n" + okService,
		want: []string{`f.yaml:1:15: node.name: must not be empty; leave the key out to use the hostname`},
	},
	{
		name: "service name required",
		yaml: `services:
  - listen: 10.0.0.1:80
    backends: [{ address: 10.0.0.11:80 }]
`,
		want: []string{`f.yaml:2:5: services[0].name: required`},
	},
	{
		name: "service name invalid",
		yaml: `services:
  - name: "web/1"
    listen: 10.0.0.1:80
    backends: [{ address: 10.0.0.11:80 }]
`,
		want: []string{`f.yaml:2:11: services[0].name: invalid name "web/1": want letters, digits, '_', '.' and '-', starting with a letter or digit`},
	},
	{
		name: "service names unique",
		yaml: `services:
  - { name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: web, listen: 10.0.0.1:81, backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{`f.yaml:3:13: services[1].name: duplicate service name "web", first used by services[0]`},
	},
	{
		name: "hash_port",
		yaml: `services:
  - { name: a, listen: 10.0.0.1:80, scheduler: wlc, hash_port: true, backends: [{ address: 10.0.0.11:80 }] }
  - { name: b, listen: 10.0.0.1:81, protocol: http, scheduler: sh, hash_port: true, backends: [{ address: 10.0.0.11:80 }] }
  - { name: c, listen: 10.0.0.1:82, protocol: udp, scheduler: mh, hash_port: true, max_sessions_per_client: 0, backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{
			`f.yaml:2:64: services[0].hash_port: scheduler wlc hashes no client address; hash_port goes with sh, mh, maglev`,
			`f.yaml:3:79: services[1].hash_port: hash_port is for tcp and udp services, not http`,
			`f.yaml:4:109: services[2].max_sessions_per_client: want at least 1, got 0`,
		},
	},
	{
		name: "listen required",
		yaml: "services: [{ name: web, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:12: services[0].listen: required; want ip:port`},
	},
	{
		name: "listen hostname",
		yaml: "services: [{ name: web, listen: www.example.com:80, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port, got "www.example.com:80": hostnames are not resolved, use a literal IP address`},
	},
	{
		name: "listen without port",
		yaml: "services: [{ name: web, listen: 10.0.0.1, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port like 192.0.2.1:80 or [2001:db8::1]:80, got "10.0.0.1"`},
	},
	{
		name: "listen IPv6 without brackets",
		yaml: "services: [{ name: web, listen: \"2001:db8::1:80\", backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port like 192.0.2.1:80 or [2001:db8::1]:80, got "2001:db8::1:80"`},
	},
	{
		name: "listen port 0",
		yaml: "services: [{ name: web, listen: 10.0.0.1:0, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port with a port of 1-65535, got "10.0.0.1:0" (port 0, all ports, is for forwarding direct or tunnel)`},
	},
	{
		name: "listen port too big",
		yaml: "services: [{ name: web, listen: 10.0.0.1:65536, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port with a port of 1-65535, got "10.0.0.1:65536"`},
	},
	{
		name: "listen shared by two tcp services",
		yaml: `services:
  - { name: a, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: b, protocol: udp, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: c, protocol: tcp, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{`f.yaml:4:39: services[2].listen: tcp 10.0.0.1:80 is already used by services[0] ("a")`},
	},
	{
		name: "listen shared through an IPv4-mapped address",
		yaml: `services:
  - { name: a, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: b, listen: "[::ffff:10.0.0.1]:80", backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{`f.yaml:3:24: services[1].listen: tcp [::ffff:10.0.0.1]:80 is already used by services[0] ("a")`},
	},
	{
		name: "unknown protocol",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, protocol: quic, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:56: services[0].protocol: unknown value "quic"; want "tcp", "udp" or "http"`},
	},
	{
		name: "misspelt protocol",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, protocol: TCP, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:56: services[0].protocol: unknown value "TCP", did you mean "tcp"?`},
	},
	{
		name: "protocol with a typo",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, protocol: sctp, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:56: services[0].protocol: unknown value "sctp", did you mean "tcp"?`},
	},
	{
		name: "misspelt scheduler",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, scheduler: wrl, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:57: services[0].scheduler: unknown scheduler "wrl", did you mean "wrr"?`},
	},
	{
		name: "unknown scheduler",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, scheduler: fastest, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:57: services[0].scheduler: unknown scheduler "fastest"; want one of ` + strings.Join(sched.Names(), ", ")},
	},
	{
		name: "no backends",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
`,
		want: []string{`f.yaml:2:5: services[0].backends: at least one backend is required`},
	},
	{
		name: "empty backends",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, backends: [] }]\n",
		want: []string{`f.yaml:1:56: services[0].backends: at least one backend is required`},
	},
	{
		name: "backend addresses",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - { weight: 2 }
      - { address: backend1:80 }
      - { address: 0.0.0.0:80 }
      - { address: "[::]:80" }
      - { address: 10.0.0.11:80 }
      - { address: "[::ffff:10.0.0.11]:80" }
      - { address: "[2001:db8::11]:80" }
      - { address: "[2001:db8::11]:81" }
`,
		want: []string{
			`f.yaml:5:9: services[0].backends[0].address: required; want ip:port`,
			`f.yaml:6:20: services[0].backends[1].address: want ip:port, got "backend1:80": hostnames are not resolved, use a literal IP address`,
			`f.yaml:7:20: services[0].backends[2].address: want the ip:port of one host, got "0.0.0.0:80"`,
			`f.yaml:8:20: services[0].backends[3].address: want the ip:port of one host, got "[::]:80"`,
			`f.yaml:10:20: services[0].backends[5].address: duplicate backend [::ffff:10.0.0.11]:80, first at backends[4]`,
		},
	},
	{
		name: "backend limits",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - { address: 10.0.0.11:80, weight: -1 }
      - { address: 10.0.0.12:80, weight: 65536 }
      - { address: 10.0.0.13:80, weight: 65535, max_connections: -1 }
      - { address: 10.0.0.14:80, weight: 0, max_connections: 0 }
`,
		want: []string{
			`f.yaml:5:42: services[0].backends[0].weight: want 0-65535, got -1`,
			`f.yaml:6:42: services[0].backends[1].weight: want 0-65535, got 65536`,
			`f.yaml:7:66: services[0].backends[2].max_connections: want 0 (no limit) or more, got -1`,
		},
	},
	{
		name: "fallback",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, fallback: sorry.example.com:80, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:56: services[0].fallback: want ip:port, got "sorry.example.com:80": hostnames are not resolved, use a literal IP address`},
	},
	{
		name: "retries",
		yaml: `services:
  - { name: a, listen: 10.0.0.1:80, retries: 17, backends: [{ address: 10.0.0.11:80 }] }
  - { name: b, listen: 10.0.0.1:81, retries: -1, backends: [{ address: 10.0.0.11:80 }] }
  - { name: c, listen: 10.0.0.1:82, retries: 16, backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{
			`f.yaml:2:46: services[0].retries: want 0-16, got 17`,
			`f.yaml:3:46: services[1].retries: want 0-16, got -1`,
		},
	},
	{
		name: "timeouts given as zero",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    timeouts: { connect: 0s, idle: 0, proxy_header: 0ms }
    backends: [{ address: 10.0.0.11:80 }]
`,
		want: []string{
			`f.yaml:4:26: services[0].timeouts.connect: want a duration above 0, got 0s`,
			`f.yaml:4:36: services[0].timeouts.idle: want a duration above 0, got 0s`,
			`f.yaml:4:53: services[0].timeouts.proxy_header: want a duration above 0, got 0s`,
		},
	},
	{
		name: "proxy protocol version",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, proxy_protocol: { send: v3 }, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:70: services[0].proxy_protocol.send: unknown value "v3"; want "v1", "v2" or nothing`},
	},
	{
		name: "proxy protocol on udp and http",
		yaml: `services:
  - { name: a, protocol: udp, listen: 10.0.0.1:53, proxy_protocol: { accept: true }, backends: [{ address: 10.0.0.11:53 }] }
  - { name: b, protocol: http, listen: 10.0.0.1:80, proxy_protocol: { send: v1 }, backends: [{ address: 10.0.0.11:80 }] }
  - { name: c, protocol: udp, listen: 10.0.0.1:54, proxy_protocol: { accept: false, send: "" }, backends: [{ address: 10.0.0.11:53 }] }
`,
		want: []string{
			`f.yaml:2:68: services[0].proxy_protocol: the PROXY protocol is supported on tcp services only, not udp`,
			`f.yaml:3:69: services[1].proxy_protocol: the PROXY protocol is supported on tcp services only, not http`,
		},
	},
	{
		name: "persistence limits",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    persistence: { timeout: 0s, netmask: 33, netmask6: 129, max_entries: 63 }
    backends: [{ address: 10.0.0.11:80 }]
  - name: web2
    listen: 10.0.0.1:81
    persistence: { netmask: -1, netmask6: -1 }
    backends: [{ address: 10.0.0.11:80 }]
`,
		want: []string{
			`f.yaml:4:29: services[0].persistence.timeout: want a duration above 0, got 0s`,
			`f.yaml:4:42: services[0].persistence.netmask: want 0-32, got 33`,
			`f.yaml:4:56: services[0].persistence.netmask6: want 0-128, got 129`,
			`f.yaml:4:74: services[0].persistence.max_entries: want at least 64, got 63`,
			`f.yaml:8:29: services[1].persistence.netmask: want 0-32, got -1`,
			`f.yaml:8:43: services[1].persistence.netmask6: want 0-128, got -1`,
		},
	},
	{
		name: "max sessions",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, max_sessions: 0, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:60: services[0].max_sessions: want at least 1, got 0`},
	},
	{
		name: "admin listen",
		yaml: "admin: { listen: localhost:9900 }\n" + okService,
		want: []string{`f.yaml:1:18: admin.listen: want ip:port or "off", got "localhost:9900": hostnames are not resolved, use a literal IP address`},
	},
	{
		name: "admin listen empty",
		yaml: "admin: { listen: \"\" }\n" + okService,
		want: []string{`f.yaml:1:18: admin.listen: required; want ip:port or "off"`},
	},
	{
		name: "log enums",
		yaml: "log: { level: trace, format: JSON }\n" + okService,
		want: []string{
			`f.yaml:1:15: log.level: unknown value "trace"; want "debug", "info", "warn" or "error"`,
			`f.yaml:1:30: log.format: unknown value "JSON", did you mean "json"?`,
		},
	},
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	runErrorCases(t, validateCases)
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
	}{
		{"admin off", "admin: { listen: off }\n" + okService},
		{"admin on all addresses", "admin: { listen: \"[::]:9900\" }\n" + okService},
		{"every protocol", `services:
  - { name: t, protocol: tcp, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: u, protocol: udp, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: h, protocol: http, listen: 10.0.0.1:8080, backends: [{ address: 10.0.0.11:80 }] }
`},
		{"listen on all addresses", "services: [{ name: web, listen: 0.0.0.0:80, backends: [{ address: 10.0.0.11:80 }] }]\n"},
		{"IPv6 with zone", "services: [{ name: web, listen: \"[fe80::1%eth0]:80\", backends: [{ address: \"[fe80::2%eth0]:80\" }] }]\n"},
		{"same backend in two services", `services:
  - { name: a, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: b, listen: 10.0.0.1:81, backends: [{ address: 10.0.0.11:80 }] }
`},
		{"rr scheduler", "services: [{ name: web, listen: 10.0.0.1:80, scheduler: rr, backends: [{ address: 10.0.0.11:80 }] }]\n"},
		{"name with dots", "node: { name: lb1.example.com }\nservices: [{ name: web.v2_a-b, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.yaml)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Parse: got %v, want nil", err)
			}
		})
	}
}

// TestValidateInCode covers a Config built without a file: errors carry
// the file name and path but no position.
func TestValidateInCode(t *testing.T) {
	t.Parallel()
	c := &Config{File: "generated"}
	c.applyDefaults()
	c.Node.Name = "lb1"
	c.Services = []Service{{Name: "web", Listen: "10.0.0.1:80", Protocol: ProtoTCP, Scheduler: "wlc",
		Timeouts: Timeouts{Connect: 1, Idle: 1, ProxyHeader: 1}, MaxSessions: 1, MaxSessionsPerClient: 1}}
	err := c.Validate()
	if got, want := errString(err), "generated: services[0].backends: at least one backend is required"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
