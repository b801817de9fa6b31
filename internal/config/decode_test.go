package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// errorCase is a config that must fail with exactly the errors in want, in
// order, as Error formats them for file f.yaml.
type errorCase struct {
	name string
	yaml string
	want []string
}

// runErrorCases is shared by the decoding and validation tables; FuzzParse
// seeds from both.
func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if c != nil {
				t.Errorf("got a config with the error, want nil")
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("got error of type %T, want Errors", err)
			}
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// okService makes a config valid apart from what a case tests; cases append
// it last so their own line numbers stay put.
const okService = "services: [{ name: ok, listen: 10.0.0.9:80, backends: [{ address: 10.0.0.99:80 }] }]\n"

var decodeCases = []errorCase{
	{
		name: "unknown field with suggestion",
		yaml: `services:
  - name: web
    lisen: 10.0.0.1:80
    backends: [{ address: 10.0.0.11:80 }]
`,
		want: []string{
			`f.yaml:2:5: services[0].listen: required; want ip:port`,
			`f.yaml:3:5: services[0]: unknown field "lisen", did you mean "listen"?`,
		},
	},
	{
		name: "unknown field in another style",
		yaml: "shutdown: { drainTimeout: 10s }\n" + okService,
		want: []string{`f.yaml:1:13: shutdown: unknown field "drainTimeout", did you mean "drain_timeout"?`},
	},
	{
		name: "unknown field without suggestion",
		yaml: "frontends: []\n" + okService,
		want: []string{`f.yaml:1:1: unknown field "frontends"; known fields: node, admin, log, shutdown, autoreload, services, alerts, ha, director`},
	},
	{
		name: "unknown field in a backend",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - address: 10.0.0.11:80
        wieght: 3
`,
		want: []string{`f.yaml:6:9: services[0].backends[0]: unknown field "wieght", did you mean "weight"?`},
	},
	{
		name: "integer wanted",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - { address: 10.0.0.11:80 }
      - { address: 10.0.0.12:80, weight: x }
`,
		want: []string{`f.yaml:6:42: services[0].backends[1].weight: want an integer, got "x"`},
	},
	{
		name: "quoted integer is a string",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, max_sessions: \"10\", backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:60: services[0].max_sessions: want an integer, got "10"`},
	},
	{
		name: "float for integer",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, retries: 1.5, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:55: services[0].retries: want an integer, got "1.5"`},
	},
	{
		name: "integer out of range",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, max_sessions: 9223372036854775808, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:60: services[0].max_sessions: integer 9223372036854775808 is out of range`},
	},
	{
		name: "bool wanted",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80, backup: yes }] }]\n",
		want: []string{`f.yaml:1:90: services[0].backends[0].backup: want true or false, got "yes"`},
	},
	{
		name: "string wanted",
		yaml: "node: { name: [lb1] }\n" + okService,
		want: []string{`f.yaml:1:15: node.name: want a string, got a list`},
	},
	{
		name: "duration wanted",
		yaml: "shutdown: { drain_timeout: abc }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: want a duration like 2s, got "abc"`},
	},
	{
		name: "duration without unit in quotes",
		yaml: "shutdown: { drain_timeout: \"30\" }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: want a duration like 2s, got "30"`},
	},
	{
		name: "duration as a float",
		yaml: "shutdown: { drain_timeout: 1.5 }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: want a duration like 2s, got "1.5"`},
	},
	{
		name: "negative duration",
		yaml: "shutdown: { drain_timeout: -1s }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: want a non-negative duration, got "-1s"`},
	},
	{
		name: "negative seconds",
		yaml: "shutdown: { drain_timeout: -5 }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: want a non-negative duration, got "-5"`},
	},
	{
		name: "seconds out of range",
		yaml: "shutdown: { drain_timeout: 9223372036854775807 }\n" + okService,
		want: []string{`f.yaml:1:28: shutdown.drain_timeout: duration "9223372036854775807" is out of range`},
	},
	{
		name: "mapping wanted",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, persistence: 360, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:59: services[0].persistence: want a mapping, got "360"`},
	},
	{
		name: "list wanted",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, backends: { address: 10.0.0.11:80 } }]\n",
		want: []string{`f.yaml:1:56: services[0].backends: want a list, got a mapping`},
	},
	{
		name: "list item not a mapping",
		yaml: "services: [web]\n",
		want: []string{`f.yaml:1:12: services[0]: want a mapping, got "web"`},
	},
	{
		name: "document not a mapping",
		yaml: "- services\n",
		want: []string{`f.yaml:1:1: want a mapping, got a list`},
	},
	{
		name: "key not a scalar",
		yaml: "? [a, b]\n: 1\n" + okService,
		want: []string{`f.yaml:1:3: want a key, got a list`},
	},
	{
		name: "duplicate key",
		yaml: `node:
  name: lb1
  name: lb2
` + okService,
		want: []string{`f.yaml:3:3: node.name: duplicate key, first at line 2`},
	},
	{
		name: "duplicate key in flow mapping",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, name: web2, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:46: services[0].name: duplicate key, first at line 1`},
	},
	{
		name: "duplicate top-level section",
		yaml: okService + okService,
		want: []string{`f.yaml:2:1: services: duplicate key, first at line 1`},
	},
	{
		name: "two documents",
		yaml: okService + "---\n" + okService,
		want: []string{`f.yaml:2:1: found a second YAML document; want exactly one`},
	},
	{
		name: "syntax error",
		yaml: "services:\n  - name: web\n    listen: [10.0.0.1:80\n",
		// The line where the unclosed list starts.
		want: []string{`f.yaml:3: invalid YAML: did not find expected ',' or ']'`},
	},
	{
		name: "parser error after the first line",
		yaml: "node:\n  name: lb1\n- x\n",
		want: []string{`f.yaml:3: invalid YAML: did not find expected key`},
	},
	{
		name: "tab indentation",
		yaml: "services:\n\t- name: web\n",
		want: []string{`f.yaml:2: invalid YAML: found character that cannot start any token`},
	},
	{
		name: "unknown anchor",
		yaml: "services: *nope\n",
		want: []string{`f.yaml: invalid YAML: unknown anchor 'nope' referenced`},
	},
	{
		name: "alias inside its own anchor",
		yaml: "services: [&s { <<: *s, name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:21: services[0]: alias *s refers to a value that contains it`},
	},
	{
		name: "merge of a scalar",
		yaml: "services: [{ <<: 5, name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:18: services[0]: merge (<<) wants a mapping or a list of mappings, got "5"`},
	},
	{
		name: "merge brings an unknown field",
		yaml: `x-d: &d { schedular: rr }
services: [{ <<: *d, name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]
`,
		want: []string{`f.yaml:1:11: services[0]: unknown field "schedular", did you mean "scheduler"?`},
	},
	{
		name: "error in an aliased value is reported once",
		yaml: `x-pool: &pool [{ address: 10.0.0.11:80, weight: heavy }]
services:
  - { name: a, listen: 10.0.0.1:80, backends: *pool }
  - { name: b, listen: 10.0.0.1:81, backends: *pool }
`,
		want: []string{`f.yaml:1:49: services[0].backends[0].weight: want an integer, got "heavy"`},
	},
	{
		name: "billion laughs",
		yaml: laughs(),
		// Through aliases each service costs 8 visits and each backend 4
		// (alias, mapping, key, value): the bound of 131072 falls in
		// services[32], at the alias of backend 702 on line 2.
		want: []string{`f.yaml:2:2820: services[32].backends[702]: aliases expand to more than 131072 values; use fewer or smaller ones`},
	},
	{
		name: "nested merges",
		yaml: nestedMerges(),
		want: []string{`f.yaml:1:13: services[0]: aliases expand to more than 131072 values; use fewer or smaller ones`},
	},
	{
		name: "decoding and validation errors together",
		yaml: `services:
  - name: web
    listen: 10.0.0.1:80
    protocol: udp
    retries: many
    proxy_protocol: { accept: true }
    backends:
      - { address: "10.0.0.11", weight: 70000 }
  - name: web
    listen: [10.0.0.1:80]
    backends: []
`,
		want: []string{
			`f.yaml:5:14: services[0].retries: want an integer, got "many"`,
			`f.yaml:6:21: services[0].proxy_protocol: the PROXY protocol is supported on tcp services only, not udp`,
			`f.yaml:8:20: services[0].backends[0].address: want ip:port like 192.0.2.1:80 or [2001:db8::1]:80, got "10.0.0.11"`,
			`f.yaml:8:41: services[0].backends[0].weight: want 0-65535, got 70000`,
			`f.yaml:9:11: services[1].name: duplicate service name "web", first used by services[0]`,
			// No "listen: required": the list was reported as such.
			`f.yaml:10:13: services[1].listen: want a string, got a list`,
			`f.yaml:11:15: services[1].backends: at least one backend is required`,
		},
	},
}

// laughs builds a small file whose aliases expand to a million backends.
func laughs() string {
	var b strings.Builder
	b.WriteString("x-b: &b { address: 10.0.0.11:80 }\n")
	b.WriteString("x-bs: &bs [" + strings.Repeat("*b, ", 999) + "*b]\n")
	b.WriteString("x-s: &s { name: web, listen: 10.0.0.1:80, backends: *bs }\n")
	b.WriteString("services:\n")
	b.WriteString(" [" + strings.Repeat("*s, ", 999) + "*s]\n")
	return b.String()
}

// nestedMerges builds merge keys ten levels deep, each merging the level
// below ten times.
func nestedMerges() string {
	var b strings.Builder
	b.WriteString("x-m0: &m0 { scheduler: rr }\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "x-m%d: &m%d { <<: [%s] }\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 10), ", "))
	}
	b.WriteString("services: [{ <<: *m9, name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]\n")
	return b.String()
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	runErrorCases(t, decodeCases)
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "x- keys are ignored at every level",
			yaml: "x-note: [anything, { at: all }]\nservices: [{ x-owner: team, name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80, x-rack: 3 }] }]\n",
			check: func(t *testing.T, c *Config) {
				if got := len(c.Services); got != 1 {
					t.Errorf("services: got %d, want 1", got)
				}
			},
		},
		{
			name: "merge from a list: the earlier mapping wins",
			yaml: `x-a: &a { scheduler: rr, retries: 1 }
x-b: &b { scheduler: lc, retries: 3, fallback: 10.0.0.200:80 }
services: [{ <<: [*a, *b], name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }]
`,
			check: func(t *testing.T, c *Config) {
				s := c.Services[0]
				if s.Scheduler != "rr" || *s.Retries != 1 || s.Fallback != "10.0.0.200:80" {
					t.Errorf("got scheduler %q, retries %d, fallback %q; want rr, 1, 10.0.0.200:80", s.Scheduler, *s.Retries, s.Fallback)
				}
			},
		},
		{
			name: "aliased scalar and key",
			yaml: `x-addr: &addr 10.0.0.11:80
x-key: &k listen
services: [{ name: web, *k : 10.0.0.1:80, backends: [{ address: *addr }] }]
`,
			check: func(t *testing.T, c *Config) {
				if got, want := c.Services[0].Backends[0].Address, "10.0.0.11:80"; got != want {
					t.Errorf("address: got %q, want %q", got, want)
				}
				if got, want := c.Services[0].Listen, "10.0.0.1:80"; got != want {
					t.Errorf("listen: got %q, want %q", got, want)
				}
			},
		},
		{
			name: "integer notations",
			yaml: "services: [{ name: web, listen: 10.0.0.1:80, max_sessions: 0x100, backends: [{ address: 10.0.0.11:80, weight: 1_000 }] }]\n",
			check: func(t *testing.T, c *Config) {
				if got, want := c.Services[0].MaxSessions, 256; got != want {
					t.Errorf("max_sessions: got %d, want %d", got, want)
				}
				if got, want := *c.Services[0].Backends[0].Weight, 1000; got != want {
					t.Errorf("weight: got %d, want %d", got, want)
				}
			},
		},
		{
			name: "explicit document markers",
			yaml: "---\n" + okService + "...\n",
			check: func(t *testing.T, c *Config) {
				if got := len(c.Services); got != 1 {
					t.Errorf("services: got %d, want 1", got)
				}
			},
		},
		{
			name: "binary string",
			yaml: "node: { name: !!binary bGIx }\n" + okService,
			check: func(t *testing.T, c *Config) {
				if got, want := c.Node.Name, "lb1"; got != want {
					t.Errorf("node.name: got %q, want %q", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, mustParse(t, tt.yaml))
		})
	}
}

// TestDecodeGeneric decodes the kinds the schema does not use yet, such as
// the maps later features need, through the same walker.
func TestDecodeGeneric(t *testing.T) {
	t.Parallel()
	type inner struct {
		A int `yaml:"a"`
	}
	type Embedded struct {
		E string `yaml:"e"`
	}
	type doc struct {
		Priority map[string]int    `yaml:"priority"`
		Labels   map[string]string `yaml:"labels"`
		U        uint8             `yaml:"u"`
		F        float64           `yaml:"f"`
		Ptr      *inner            `yaml:"ptr"`
		List     []*inner          `yaml:"list"`
		Plain    string
		Skipped  string `yaml:"-"`
		Embedded `yaml:",inline"`
	}
	tests := []struct {
		name string
		yaml string
		want doc
		errs []string
	}{
		{
			name: "values",
			yaml: `priority: { lb1: 150, lb2: 100 }
labels: { "a.b": x }
u: 255
f: 1.5
ptr: { a: 1 }
list: [{ a: 2 }, ~]
plain: p
e: inline
`,
			want: doc{
				Priority: map[string]int{"lb1": 150, "lb2": 100},
				Labels:   map[string]string{"a.b": "x"},
				U:        255, F: 1.5,
				Ptr:      &inner{A: 1},
				List:     []*inner{{A: 2}, nil},
				Plain:    "p",
				Embedded: Embedded{E: "inline"},
			},
		},
		{
			name: "errors",
			yaml: `priority: { lb1: high, lb1: 1 }
labels: { "a.b": [x] }
u: 256
f: x
ptr: { b: 1 }
Skipped: s
`,
			errs: []string{
				`f.yaml:1:18: priority.lb1: want an integer, got "high"`,
				`f.yaml:1:24: priority.lb1: duplicate key, first at line 1`,
				`f.yaml:2:18: labels["a.b"]: want a string, got a list`,
				`f.yaml:3:4: u: integer 256 is out of range`,
				`f.yaml:4:4: f: want a number, got "x"`,
				`f.yaml:5:8: ptr: unknown field "b"; known fields: a`,
				`f.yaml:6:1: unknown field "Skipped"; known fields: priority, labels, u, f, ptr, list, plain, e`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got doc
			d := newDecoder("f.yaml")
			d.document([]byte(tt.yaml), &got)
			sortErrors(d.errs)
			var errs []string
			for _, e := range d.errs {
				errs = append(errs, e.Error())
			}
			if diff := cmp.Diff(tt.errs, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if tt.errs == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
			}
		})
	}
}
