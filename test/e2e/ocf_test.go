package e2e

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ocfAgent = "../../dist/ocf/fulcrum"

// OCF exit codes.
const (
	ocfSuccess          = 0
	ocfErrGeneric       = 1
	ocfErrUnimplemented = 3
	ocfErrInstalled     = 5
	ocfErrConfigured    = 6
	ocfNotRunning       = 7
)

// ocfShellfuncs stands in for resource-agents' ocf-shellfuncs when that
// package is not installed: the exit codes and the logging the agent uses,
// with the same output format.
const ocfShellfuncs = `OCF_SUCCESS=0
OCF_ERR_GENERIC=1
OCF_ERR_ARGS=2
OCF_ERR_UNIMPLEMENTED=3
OCF_ERR_PERM=4
OCF_ERR_INSTALLED=5
OCF_ERR_CONFIGURED=6
OCF_NOT_RUNNING=7
ocf_log() { level=$1; shift; echo "$level: $*" >&2; }
ocf_exit_reason() { echo "ocf-exit-reason:$*" >&2; }
`

// ocfResource runs the agent's actions against one fulcrum instance, as
// pacemaker-execd would.
type ocfResource struct {
	t   *testing.T
	env []string
	dir string
}

func newOCFResource(t *testing.T, configPath string) *ocfResource {
	t.Helper()
	dir := t.TempDir()
	root := "/usr/lib/ocf"
	if _, err := os.Stat(filepath.Join(root, "lib/heartbeat/ocf-shellfuncs")); err != nil {
		root = filepath.Join(dir, "ocf")
		lib := filepath.Join(root, "lib", "heartbeat")
		if err := os.MkdirAll(lib, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, "ocf-shellfuncs"), []byte(ocfShellfuncs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &ocfResource{t: t, dir: dir, env: append(os.Environ(),
		"OCF_ROOT="+root,
		"HA_RSCTMP="+dir,
		"OCF_RESOURCE_INSTANCE=fulcrum-e2e",
		"OCF_RESKEY_binary="+binary,
		"OCF_RESKEY_config="+configPath,
		"OCF_RESKEY_pidfile="+filepath.Join(dir, "run", "fulcrum.pid"),
		"OCF_RESKEY_logfile="+filepath.Join(dir, "log", "fulcrum.log"),
		"OCF_RESKEY_CRM_meta_timeout=20000",
	)}
	t.Cleanup(func() {
		if p, err := r.pid(); err == nil {
			syscall.Kill(p, syscall.SIGKILL)
		}
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(dir, "log", "fulcrum.log"))
			t.Logf("fulcrum log:\n%s", logs)
		}
	})
	return r
}

// run runs one action and returns its exit code and standard error.
func (r *ocfResource) run(action string, extraEnv ...string) (int, string) {
	r.t.Helper()
	cmd := exec.Command("sh", ocfAgent, action)
	cmd.Env = append(r.env, extraEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("%s: %v", action, err)
	}
	if action == "meta-data" {
		return code, string(out)
	}
	return code, stderr.String()
}

func (r *ocfResource) expect(action string, want int, extraEnv ...string) string {
	r.t.Helper()
	code, out := r.run(action, extraEnv...)
	if code != want {
		r.t.Fatalf("%s: exit %d, want %d\n%s", action, code, want, out)
	}
	return out
}

func (r *ocfResource) pid() (int, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, "run", "fulcrum.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// TestOCFAgent drives dist/ocf/fulcrum through a resource's life as
// Pacemaker would (probe, start, monitor, reload, stop), with the real
// binary, and checks each exit code.
func TestOCFAgent(t *testing.T) {
	t.Parallel()
	backend := startTCPBackend(t, "b1")
	listen, admin := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	cfgPath := filepath.Join(t.TempDir(), "fulcrum.yaml")
	cfg := fmt.Sprintf("admin: { listen: %s }\nshutdown: { drain_timeout: 2s }\nservices:\n  - name: web\n    listen: %s\n    backends: [ { address: %s } ]\n", admin, listen, backend.addr)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg)
	r := newOCFResource(t, cfgPath)

	r.expect("monitor", ocfNotRunning) // the probe before the first start
	r.expect("stop", ocfSuccess)       // stopping what does not run succeeds
	r.expect("validate-all", ocfSuccess)
	r.expect("start", ocfSuccess)
	if got, err := ask(listen); err != nil || got != "b1" {
		t.Fatalf("after start: got %q, %v; want an answer from b1", got, err)
	}
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatalf("admin API after start: %v", err)
	}
	resp.Body.Close()
	r.expect("monitor", ocfSuccess)
	first, err := r.pid()
	if err != nil {
		t.Fatal(err)
	}
	r.expect("start", ocfSuccess) // already running: no second daemon
	if again, _ := r.pid(); again != first {
		t.Errorf("second start: pid %d, want the running %d", again, first)
	}

	// reload applies an edited file through SIGHUP.
	second := freeAddr(t, "tcp")
	write(cfg + fmt.Sprintf("  - name: web2\n    listen: %s\n    backends: [ { address: %s } ]\n", second, backend.addr))
	r.expect("reload", ocfSuccess)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, err := ask(second); err == nil && got == "b1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the service added by reload does not answer within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A broken file: reload refuses it, the running daemon stays healthy.
	write("services: [ { name: web, lisen: 1 } ]\n")
	if out := r.expect("reload", ocfErrConfigured); !strings.Contains(out, `ocf-exit-reason:invalid config: `) || !strings.Contains(out, `unknown field "lisen"`) {
		t.Errorf("reload of a broken file: stderr %q, want the exit reason naming the error", out)
	}
	r.expect("monitor", ocfSuccess)
	r.expect("validate-all", ocfErrConfigured)
	write(cfg)

	// A daemon that no longer answers is a failure, not "not running".
	p, _ := r.pid()
	if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	code, out := r.run("monitor")
	syscall.Kill(p, syscall.SIGCONT)
	if code != ocfErrGeneric || !strings.Contains(out, "does not answer on its admin API") {
		t.Errorf("monitor of a stopped process: exit %d (%q), want %d", code, out, ocfErrGeneric)
	}
	r.expect("monitor", ocfSuccess)

	r.expect("stop", ocfSuccess)
	if err := syscall.Kill(p, 0); err == nil {
		t.Errorf("fulcrum (pid %d) still runs after stop", p)
	}
	if _, err := ask(listen); err == nil {
		t.Error("the service still answers after stop")
	}
	r.expect("monitor", ocfNotRunning)
	r.expect("stop", ocfSuccess)

	// start refuses a broken file before running anything.
	write("services: []\n")
	r.expect("start", ocfErrConfigured)
	r.expect("monitor", ocfNotRunning)
	write(cfg)

	r.expect("validate-all", ocfErrInstalled, "OCF_RESKEY_binary=/nonexistent/fulcrum")
	r.expect("monitor", ocfNotRunning, "OCF_RESKEY_binary=/nonexistent/fulcrum")
	r.expect("validate-all", ocfErrConfigured, "OCF_RESKEY_config=/nonexistent/fulcrum.yaml")
	r.expect("promote", ocfErrUnimplemented)
}

// TestOCFMetaData checks that meta-data is well-formed XML in the OCF
// shape, naming the parameters and actions the agent implements.
func TestOCFMetaData(t *testing.T) {
	t.Parallel()
	r := newOCFResource(t, "/etc/fulcrum/fulcrum.yaml")
	out := r.expect("meta-data", ocfSuccess)
	var md struct {
		XMLName xml.Name `xml:"resource-agent"`
		Name    string   `xml:"name,attr"`
		Version string   `xml:"version"`
		Params  []struct {
			Name    string `xml:"name,attr"`
			Content struct {
				Type    string `xml:"type,attr"`
				Default string `xml:"default,attr"`
			} `xml:"content"`
		} `xml:"parameters>parameter"`
		Actions []struct {
			Name     string `xml:"name,attr"`
			Timeout  string `xml:"timeout,attr"`
			Interval string `xml:"interval,attr"`
		} `xml:"actions>action"`
	}
	d := xml.NewDecoder(strings.NewReader(out))
	d.Strict = true
	if err := d.Decode(&md); err != nil {
		t.Fatalf("meta-data is not valid XML: %v\n%s", err, out)
	}
	if md.Name != "fulcrum" || md.Version != "1.1" {
		t.Errorf("resource-agent name %q, OCF version %q; want fulcrum, 1.1", md.Name, md.Version)
	}
	params := map[string]string{}
	for _, p := range md.Params {
		params[p.Name] = p.Content.Default
	}
	for _, p := range []string{"config", "binary", "admin", "pidfile", "logfile"} {
		if _, ok := params[p]; !ok {
			t.Errorf("meta-data lacks parameter %q", p)
		}
	}
	if params["config"] != "/etc/fulcrum/fulcrum.yaml" {
		t.Errorf("config default %q, want /etc/fulcrum/fulcrum.yaml", params["config"])
	}
	actions := map[string]bool{}
	for _, a := range md.Actions {
		actions[a.Name] = true
		if a.Name == "monitor" && a.Interval != "15s" {
			t.Errorf("monitor interval %q, want 15s as in the tutorial", a.Interval)
		}
	}
	for _, a := range []string{"start", "stop", "monitor", "reload", "validate-all", "meta-data"} {
		if !actions[a] {
			t.Errorf("meta-data lacks action %q", a)
		}
	}
}

// TestOCFAgentLint runs shellcheck on the agent as POSIX sh: the agent
// must work with dash and busybox sh, not only bash.
func TestOCFAgentLint(t *testing.T) {
	t.Parallel()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed (apt-get install shellcheck); skipping the lint of dist/ocf/fulcrum")
	}
	if out, err := exec.Command(sc, "-s", "sh", ocfAgent).CombinedOutput(); err != nil {
		t.Errorf("shellcheck -s sh %s: %v\n%s", ocfAgent, err, out)
	}
}
