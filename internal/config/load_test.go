package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// ignorePos compares Configs by their settings only.
var ignorePos = cmpopts.IgnoreUnexported(Config{})

// TestGolden loads each testdata/*.yaml. A valid-* file must load, and its
// golden file is the effective config (Marshal); an invalid-* file must
// fail, and its golden file is the error text.
func TestGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := loadForGolden(t, file, strings.HasPrefix(name, "valid-"))
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs from %s (-want +got):\n%s", file, golden, diff)
			}
		})
	}
}

func loadForGolden(t *testing.T, file string, valid bool) string {
	t.Helper()
	// Files named in a config are made absolute: the golden files say
	// TESTDATA for this machine's testdata directory.
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	portable := func(s string) string { return strings.ReplaceAll(s, dir+string(filepath.Separator), "TESTDATA/") }
	c, err := Load(file)
	if !valid {
		if err == nil {
			t.Fatalf("Load(%s): got no error, want some", file)
		}
		return portable(err.Error() + "\n")
	}
	if err != nil {
		t.Fatalf("Load(%s): %v", file, err)
	}
	if !c.given("node.name") {
		host, _ := os.Hostname()
		if c.Node.Name != host {
			t.Errorf("node.name: got %q, want the hostname %q", c.Node.Name, host)
		}
		// The golden file must not depend on the machine.
		c.Node.Name = "HOSTNAME"
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, c)
	return portable(string(out))
}

// checkRoundTrip asserts that the effective config reads back unchanged.
func checkRoundTrip(t *testing.T, c *Config) {
	t.Helper()
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(c.File, out)
	if err != nil {
		t.Fatalf("Parse(Marshal(config)): %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, back, ignorePos); diff != "" {
		t.Errorf("Parse(Marshal(config)) differs (-want +got):\n%s", diff)
	}
	if got, want := back.Hash(), c.Hash(); got != want {
		t.Errorf("Hash after round trip: got %s, want %s", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
}

const minimal = `
services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - address: 10.0.0.11:80
`

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse("f.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	tests := []struct {
		name string
		yaml string
		want func(c *Config) // edits the expected config, built from defaults below
	}{
		{
			name: "tcp",
			yaml: minimal,
		},
		{
			name: "udp idle timeout",
			yaml: strings.Replace(minimal, "listen:", "protocol: udp\n    listen:", 1),
			want: func(c *Config) {
				c.Services[0].Protocol = ProtoUDP
				c.Services[0].Timeouts.Idle = Duration(defaultIdleTimeoutUDP)
			},
		},
		{
			name: "http idle timeout is tcp's",
			yaml: strings.Replace(minimal, "listen:", "protocol: http\n    listen:", 1),
			want: func(c *Config) {
				c.Services[0].Protocol = ProtoHTTP
				c.Services[0].HTTP = &HTTP{
					Forwarded: Forwarded{XForwardedFor: ptr(true), XForwardedProto: ptr(true), XForwardedHost: ptr(true)},
					Limits:    Limits{MaxRequestLine: 8192, MaxHeaderBytes: 32768, MaxHeaders: 100},
					Timeouts: HTTPTimeouts{
						Header: Duration(10e9), KeepAlive: Duration(60e9), Body: Duration(60e9), Response: Duration(60e9),
					},
					MaxIdlePerBackend: 1024,
					Poller:            ptr(true),
				}
			},
		},
		{
			name: "persistence present takes its defaults",
			yaml: strings.Replace(minimal, "listen:", "persistence: {}\n    listen:", 1),
			want: func(c *Config) {
				c.Services[0].Persistence = &Persistence{
					Timeout: Duration(defaultPersistTimeout), Netmask: 32, Netmask6: 128, MaxEntries: 1048576,
				}
			},
		},
		{
			name: "bare integer duration is seconds",
			yaml: "shutdown: { drain_timeout: 90 }\n" + minimal,
			want: func(c *Config) { c.Shutdown.DrainTimeout = Duration(90e9) },
		},
		{
			name: "explicit zeros kept",
			yaml: "shutdown: { drain_timeout: 0 }\n" + strings.Replace(minimal, "listen:", "retries: 0\n    persistence: { netmask: 0, netmask6: 0 }\n    listen:", 1) + "        weight: 0\n",
			want: func(c *Config) {
				c.Shutdown.DrainTimeout = 0
				c.Services[0].Retries = ptr(0)
				c.Services[0].Persistence = &Persistence{
					Timeout: Duration(defaultPersistTimeout), Netmask: 0, Netmask6: 0, MaxEntries: 1048576,
				}
				c.Services[0].Backends[0].Weight = ptr(0)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mustParse(t, tt.yaml)
			want := &Config{
				Node:     Node{Name: host},
				Admin:    Admin{Listen: "127.0.0.1:9900"},
				Log:      Log{Level: "info", Format: "text"},
				Shutdown: Shutdown{DrainTimeout: Duration(30e9)},
				Services: []Service{{
					Name: "web", Listen: "10.0.0.1:80", Protocol: "tcp", Forwarding: "proxy", Scheduler: "wlc",
					Backends: []Backend{{Address: "10.0.0.11:80", Weight: ptr(1)}},
					Retries:  ptr(2),
					Timeouts: Timeouts{
						Connect: Duration(5e9), Idle: Duration(15 * 60e9), ProxyHeader: Duration(5e9),
					},
					MaxSessions: 65536, MaxSessionsPerClient: 1024,
					Quiescent:    ptr(true),
					RemovalGrace: Duration(defaultRemovalGrace),
				}},
				File: "f.yaml",
			}
			if tt.want != nil {
				tt.want(want)
			}
			if diff := cmp.Diff(want, got, ignorePos); diff != "" {
				t.Errorf("effective config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDefaultsInCode covers a Config built without a file: zero values
// take defaults, and applying them twice changes nothing.
func TestDefaultsInCode(t *testing.T) {
	t.Parallel()
	c := &Config{
		Node: Node{Name: "lb1"},
		Services: []Service{{
			Name: "dns", Listen: "10.0.0.1:53", Protocol: ProtoUDP,
			Persistence: &Persistence{},
			Backends:    []Backend{{Address: "10.0.0.11:53"}},
		}},
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after applyDefaults: %v", err)
	}
	once, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.applyDefaults()
	twice, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(once), string(twice)); diff != "" {
		t.Errorf("second applyDefaults changed the config (-once +twice):\n%s", diff)
	}
	s := c.Service("dns")
	if s == nil {
		t.Fatal(`Service("dns"): got nil`)
	}
	if got, want := s.Timeouts.Idle.D(), defaultIdleTimeoutUDP; got != want {
		t.Errorf("udp idle timeout: got %v, want %v", got, want)
	}
	if got, want := s.Persistence.Netmask, 32; got != want {
		t.Errorf("netmask: got %d, want %d", got, want)
	}
	if c.Service("nope") != nil {
		t.Error(`Service("nope"): got a service, want nil`)
	}
}

func TestPos(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `node: { name: lb1 }
services:
  - name: web
    listen: 10.0.0.1:80
    backends:
      - address: 10.0.0.11:80
      - { address: 10.0.0.12:80, weight: 5 }
`)
	tests := []struct {
		path      string
		line, col int
	}{
		{"node.name", 1, 15},
		{"services", 3, 3},
		{"services[0]", 3, 5},
		{"services[0].listen", 4, 13},
		{"services[0].backends[1]", 7, 9},
		{"services[0].backends[1].weight", 7, 42},
		{"services[0].backends[0].weight", 6, 9}, // defaulted: its backend
		{"services[0].timeouts.idle", 3, 5},      // defaulted: its service
		{"admin.listen", 0, 0},                   // no enclosing value in the file
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			line, col := c.Pos(tt.path)
			if line != tt.line || col != tt.col {
				t.Errorf("Pos(%q): got %d:%d, want %d:%d", tt.path, line, col, tt.line, tt.col)
			}
		})
	}
}

func TestParentPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"services[0].backends[1].weight", "services[0].backends[1]"},
		{"services[0].backends[1]", "services[0].backends"},
		{"services[0]", "services"},
		{"services", ""},
		{"", ""},
		{`ha.priority["a.b[c"]`, "ha.priority"},
		{`ha.priority["a\"b"].x`, `ha.priority["a\"b"]`},
	}
	for _, tt := range tests {
		if got := parentPath(tt.in); got != tt.want {
			t.Errorf("parentPath(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	base := mustParse(t, "node: { name: lb1 }\n"+minimal)
	tests := []struct {
		name string
		yaml string
		same bool
	}{
		{
			name: "other node name",
			yaml: "node: { name: lb2 }\n" + minimal,
			same: true,
		},
		{
			name: "flow style, comments and spelled-out defaults",
			yaml: `# same config
node: { name: lb1 }
log: { level: info }
services: [{ name: web, listen: 10.0.0.1:80, scheduler: wlc, backends: [{ address: 10.0.0.11:80, weight: 1 }] }]
`,
			same: true,
		},
		{
			name: "other weight",
			yaml: "node: { name: lb1 }\n" + minimal + "        weight: 2\n",
			same: false,
		},
		{
			name: "autoreload on",
			yaml: "node: { name: lb1 }\nautoreload: true\n" + minimal,
			same: false,
		},
		{
			name: "other admin address",
			yaml: "node: { name: lb1 }\nadmin: { listen: off }\n" + minimal,
			same: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.yaml)
			if got := c.Hash() == base.Hash(); got != tt.same {
				t.Errorf("hashes equal: got %v, want %v", got, tt.same)
			}
		})
	}
	// Each node of a unicast pair lists the other as its peer: same hash.
	ha := `ha:
  groups:
    - name: web
      interface: eth0
      vrid: 51
      vips: [10.0.0.1/24]
      priority: { lb1: 150, lb2: 100 }
      unicast_peers: [%s]
`
	lb1 := mustParse(t, "node: { name: lb1 }\n"+minimal+fmt.Sprintf(ha, "10.0.0.3"))
	lb2 := mustParse(t, "node: { name: lb2 }\n"+minimal+fmt.Sprintf(ha, "10.0.0.2"))
	if lb1.Hash() != lb2.Hash() {
		t.Error("unicast_peers changed the hash; it is node-specific")
	}
	if len(lb1.HA.Groups[0].UnicastPeers) != 1 {
		t.Error("Hash modified the config's unicast_peers")
	}
	if h := base.Hash(); len(h) != 64 {
		t.Errorf("Hash: got %q, want 64 hex digits", h)
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Duration
		want string
	}{
		{0, "0s"},
		{Duration(250e6), "250ms"},
		{Duration(30e9), "30s"},
		{Duration(15 * 60e9), "15m"},
		{Duration(3600e9), "1h"},
		{Duration(5400e9), "1h30m"},
		{Duration(3601e9), "1h0m1s"},
		{Duration(90.5e9), "1m30.5s"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Duration(%d).String(): got %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "f.yaml", Line: 12, Column: 7, Field: "services[0].backends[1].weight", Msg: `want an integer, got "x"`},
			`f.yaml:12:7: services[0].backends[1].weight: want an integer, got "x"`},
		{Error{File: "f.yaml", Line: 3, Msg: "invalid YAML: x"}, "f.yaml:3: invalid YAML: x"},
		{Error{File: "f.yaml", Field: "services", Msg: "no services"}, "f.yaml: services: no services"},
		{Error{Line: 1, Column: 2, Msg: "m"}, "1:2: m"},
		{Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	errs := Errors{&tests[0].err, &tests[1].err}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error(): got %q, want %q", got, want)
	}
	var one *Error
	if !errors.As(error(errs), &one) || one != &tests[0].err {
		t.Errorf("errors.As(Errors, *Error): got %v, want the first error", one)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	keys := []string{"name", "listen", "protocol", "scheduler", "persistence", "backends", "max_sessions", "timeouts"}
	tests := []struct{ in, want string }{
		{"lisen", "listen"},
		{"Listen", "listen"},
		{"maxSessions", "max_sessions"},
		{"max-sessions", "max_sessions"},
		{"timeout", "timeouts"},
		{"backend", "backends"},
		{"schedular", "scheduler"},
		{"foo", ""},
		{"weight", ""},
		{"x", ""},
		{strings.Repeat("a", 100), ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
