package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

const (
	schemaFile = "../../../docs/fulcrum.schema.json"
	repo       = "../../.."
)

// TestSchemaUpToDate regenerates the schema from the config types and
// fails when the committed file differs: a key added, renamed or
// documented differently needs `go generate ./internal/config/`.
func TestSchemaUpToDate(t *testing.T) {
	t.Parallel()
	docs, err := ParseDocs("..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Config(docs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("docs/fulcrum.schema.json is stale; run go generate ./internal/config/ (-committed +generated):\n%s", diff)
	}
}

func compileCommitted(t *testing.T) *Validator {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Compile(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// yamlBlocks returns the ```yaml blocks of a Markdown file with the line
// each starts on.
func yamlBlocks(t *testing.T, path string) map[int]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[int]string{}
	var cur *strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur, start = &strings.Builder{}, i+2
		case cur != nil && trimmed == "```":
			blocks[start] = cur.String()
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// TestSchemaAcceptsExamplesAndDocs validates every example config and
// every YAML snippet of the docs against the committed schema: what the
// documentation shows and fulcrum accepts, an editor must accept.
func TestSchemaAcceptsExamplesAndDocs(t *testing.T) {
	t.Parallel()
	v := compileCommitted(t)
	docs := map[string]string{} // name → YAML
	examples, _ := filepath.Glob(filepath.Join(repo, "examples", "*.yaml"))
	for _, f := range examples {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[strings.TrimPrefix(f, repo+"/")] = string(data)
	}
	md, _ := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	md = append(md, filepath.Join(repo, "README.md"))
	for _, f := range md {
		for line, block := range yamlBlocks(t, f) {
			docs[strings.TrimPrefix(f, repo+"/")+":"+strconv.Itoa(line)] = dedent(block)
		}
	}
	if len(docs) < 4 {
		t.Fatalf("found %d configs to check, want the docs' snippets at least", len(docs))
	}
	for name, data := range docs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			errs, err := v.ValidateYAML([]byte(data))
			if err != nil {
				t.Fatalf("not YAML: %v", err)
			}
			if len(errs) == 0 {
				return
			}
			// The loader is the judge: a file it refuses as well is not a
			// config yet (an example written for a key another branch
			// adds), which the tests of the examples and docs report.
			if _, perr := config.Parse(name, []byte(data)); perr != nil {
				t.Skipf("the loader refuses it too (%v); schema: %v", perr, errs)
			}
			for _, e := range errs {
				t.Errorf("%s: the loader accepts it, the schema does not: %v", name, e)
			}
		})
	}
}

// TestSchemaAgreesWithLoader: every config the loader accepts, the schema
// accepts; every mistake of kind the schema can see (a key, a type, a
// value out of a fixed set, a missing key), both refuse.
func TestSchemaAgreesWithLoader(t *testing.T) {
	t.Parallel()
	v := compileCommitted(t)
	valid, _ := filepath.Glob("../testdata/valid-*.yaml")
	valid = append(valid, "../../cli/testdata/check.yaml", "../../cli/testdata/check-effective.golden")
	for _, f := range valid {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse(f, data); err != nil {
				t.Fatalf("the loader refuses it: %v", err)
			}
			errs, err := v.ValidateYAML(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				t.Errorf("schema refuses a valid config: %v", e)
			}
		})
	}

	const base = "node: { name: lb1 }\nservices:\n  - name: web\n    listen: 10.0.0.1:80\n    backends: [ { address: 10.0.0.11:80 } ]\n"
	bad := []struct{ name, yaml, want string }{
		{"unknown key", base + "    lisen: 10.0.0.1:81\n", `services[0]: unknown key "lisen"`},
		{"unknown top-level key", base + "servics: []\n", `(document): unknown key "servics"`},
		{"string for integer", base + "    retries: two\n", `services[0].retries: want integer or null, got the string "two"`},
		{"quoted integer", base + "    max_sessions: \"5\"\n", `services[0].max_sessions: want integer or null`},
		{"yes is no boolean", base + "    quiescent: yes\n", `services[0].quiescent: want boolean or null`},
		{"unknown scheduler", base + "    scheduler: roundrobin\n", `services[0].scheduler: the string "roundrobin" is not one of`},
		{"unknown protocol", base + "    protocol: sctp\n", `services[0].protocol: the string "sctp" is not one of`},
		{"unknown health type", base + "    health: { type: icmp }\n", `services[0].health.type: the string "icmp" is not one of`},
		{"key of another check type", base + "    health: { type: http, send: \"PING\\r\\n\" }\n", `services[0].health.send: not allowed here (keys of other check types than http)`},
		{"backend switching the type", base + "    health: { type: http }\n    fallback: 10.0.0.9:80\n  - name: db\n    listen: 10.0.0.1:5432\n    health: { type: http }\n    backends: [ { address: 10.0.0.21:5432, health: { type: tcp, path: /x } } ]\n", `services[1].backends[0].health.path: not allowed here (keys of other check types than tcp)`},
		{"bad duration", base + "    slow_start: 5 minutes\n", `services[0].slow_start: "5 minutes" does not match`},
		{"negative duration", base + "    slow_start: -5\n", `services[0].slow_start: -5 is below the minimum 0`},
		{"missing required", "services:\n  - name: web\n    backends: [ { address: 10.0.0.11:80 } ]\n", `services[0]: missing required key "listen"`},
		{"bad name", strings.Replace(base, "name: web", "name: -web", 1), `services[0].name: "-web" does not match`},
		{"alert event", base + "alerts: [ { exec: [x], events: [backends] } ]\n", `alerts[0].events[0]: the string "backends" is not one of`},
		{"list for mapping", base + "log: [ debug ]\n", `log: want object or null, got a list`},
		{"priority not integer", base + "ha: { groups: [ { name: g, interface: eth0, vrid: 1, vips: [10.0.0.1], priority: { lb1: high } } ] }\n", `ha.groups[0].priority.lb1: want integer or null`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := config.Parse("bad.yaml", []byte(tt.yaml)); err == nil {
				t.Errorf("the loader accepts it; the case is wrong")
			}
			errs, err := v.ValidateYAML([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tt.want) {
				t.Errorf("schema errors %q, want one containing %q", msgs, tt.want)
			}
		})
	}
}

// TestSchemaExtensionKeysAndAnchors: x- keys, anchors and merge keys, as
// the loader reads them.
func TestSchemaExtensionKeysAndAnchors(t *testing.T) {
	t.Parallel()
	v := compileCommitted(t)
	doc := `x-pool: &pool
  - { address: 10.0.0.11:80 }
x-defaults: &defaults { scheduler: rr, protocol: tcp }
services:
  - { <<: *defaults, name: web, listen: 10.0.0.1:80, backends: *pool, x-note: hi }
shutdown: { drain_timeout: 30 }
`
	if _, err := config.Parse("f.yaml", []byte(doc)); err != nil {
		t.Fatalf("the loader refuses it: %v", err)
	}
	errs, err := v.ValidateYAML([]byte(doc))
	if err != nil || len(errs) > 0 {
		t.Errorf("got %v, %v; want no errors", errs, err)
	}
}

func TestCompileRefusesUnsupportedKeywords(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`{"type": "object", "oneOf": []}`,
		`{"properties": {"a": {"anyOf": []}}}`,
		`{"$ref": "http://example.com/x.json"}`,
		`{"$ref": "#/$defs/missing"}`,
		`{"pattern": "("}`,
	} {
		if _, err := Compile([]byte(s)); err == nil {
			t.Errorf("Compile(%s): got nil error, want one", s)
		}
	}
}

func TestDurationPattern(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{"0", "250ms", "2s", "1m30s", "1h", "1.5h", "10us", "10µs", ".5s", "0s"} {
		if !re.MatchString(s) {
			t.Errorf("%q: got no match, want one (the loader reads it)", s)
		}
	}
	for _, s := range []string{"", "5", "-1s", "5 s", "1d", "s", "1m30"} {
		if re.MatchString(s) {
			t.Errorf("%q: got a match, want none", s)
		}
	}
}

// dedent strips the indent common to every non-blank line, as a block in
// a Markdown list item has.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
