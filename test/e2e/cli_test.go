package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

func TestUDPService(t *testing.T) {
	t.Parallel()
	var backends []string
	for i := range 2 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(append([]byte(fmt.Sprintf("u%d:", i)), buf[:n]...), from)
			}
		}()
		backends = append(backends, pc.LocalAddr().String())
	}
	listen := freeAddr(t, "udp")
	startNode(t, fmt.Sprintf(`admin: { listen: ADMIN }
services:
  - name: dns
    listen: %s
    protocol: udp
    scheduler: rr
    backends: [ { address: %s }, { address: %s } ]
`, listen, backends[0], backends[1]))

	seen := map[string]int{}
	for client := range 4 {
		c, err := net.Dial("udp", listen)
		if err != nil {
			t.Fatal(err)
		}
		var first string
		for i := range 5 {
			msg := fmt.Sprintf("c%d-%d", client, i)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("client %d datagram %d: %v", client, i, err)
			}
			name, body, _ := strings.Cut(string(buf[:n]), ":")
			if body != msg {
				t.Fatalf("got reply %q, want echo of %q", buf[:n], msg)
			}
			if first == "" {
				first = name
			} else if name != first {
				t.Fatalf("client %d: answered by %s then %s, want one session on one backend", client, first, name)
			}
		}
		seen[first]++
		c.Close()
	}
	if seen["u0"] != 2 || seen["u1"] != 2 {
		t.Errorf("sessions per backend: got %v, want 2 each under rr", seen)
	}
}

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("services:\n  - name: web\n    listen: 127.0.0.1:8080\n    backends: [ { address: 127.0.0.1:9001 } ]\n"), 0o644)
	os.WriteFile(bad, []byte("services:\n  - name: web\n    lisen: 127.0.0.1:8080\n    scheduler: nope\n    backends: [ { address: 127.0.0.1:9001, weight: -1 } ]\n"), 0o644)

	out, err := exec.Command(binary, "check", "-c", good).CombinedOutput()
	if err != nil {
		t.Fatalf("check good config: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "check", "-c", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("check bad config: got %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"bad.yaml:3:", "lisen", "bad.yaml:4:", "scheduler", "bad.yaml:5:", "weight"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 2)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "rr", "", bs, []int{1, 0}))
	for range 3 {
		if _, err := ask(listen); err != nil {
			t.Fatal(err)
		}
	}
	// A closed connection is counted once the proxy has seen both ends
	// close; wait for that before taking the snapshot the test compares.
	deadline := time.Now().Add(5 * time.Second)
	for n.service("web").Counters.Active != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out, err := exec.Command(binary, "status", "--admin", n.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, re := range []string{
		`(?m)^TCP  ` + regexp.QuoteMeta(listen) + ` web rr  \[conns 3 active 0 no-backend 0 connect-failures 0\]$`,
		`(?m)^\s+-> ` + regexp.QuoteMeta(bs[0].addr) + `\s+primary\s+up\s+ready\s+1\s+-\s+0\s+3\s`,
		`(?m)^\s+-> ` + regexp.QuoteMeta(bs[1].addr) + `\s+primary\s+quiesced\s+ready\s+0\s+-\s+0\s+0\s`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("status output does not match %s:\n%s", re, out)
		}
	}
	js, err := exec.Command(binary, "status", "--admin", n.admin, "--json").Output()
	if err != nil || !strings.Contains(string(js), `"scheduler": "rr"`) {
		t.Errorf("status --json: %v\n%s", err, js)
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	web, udp, adm := freeAddr(t, "tcp"), freeAddr(t, "udp"), freeAddr(t, "tcp")
	cmd := exec.Command(binary, "demo", "--web", web, "--udp", udp, "--admin", adm)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go io.Copy(io.Discard, bufio.NewReader(stdout))

	var resp *http.Response
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get("http://" + adm + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
	}
	if err != nil {
		t.Fatalf("demo not ready: %v", err)
	}
	counts := map[string]int{}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 60 {
		resp, err := client.Get("http://" + web + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`demo backend (\d)`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("unexpected demo answer %q", body)
		}
		counts[string(m[1])]++
	}
	// Weights 1:2:3 under weighted round robin.
	if counts["1"] != 10 || counts["2"] != 20 || counts["3"] != 30 {
		t.Errorf("demo distribution: got %v, want 1:10 2:20 3:30", counts)
	}
	// The binary's /metrics counted them too.
	resp, err = http.Get("http://" + adm + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fulcrum_service_connections_total{service="web"} 60`, `fulcrum_info{`, `go_goroutines `} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
}

// TestBackendAndReloadCommands drives runtime control through the real
// binary: drain keeps the established connection and sends no new ones,
// a runtime weight shows in status, and `fulcrum reload` applies a valid
// file (keeping the drain) and rejects an invalid one with its errors.
func TestBackendAndReloadCommands(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 3)
	listen := freeAddr(t, "tcp")
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("e2e-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withToken := func(cfg string) string {
		return strings.Replace(cfg, "admin: { listen: ADMIN }", "admin: { listen: ADMIN, token_file: "+tokenFile+" }", 1)
	}
	n := startNode(t, withToken(tcpConfig(listen, "rr", "", bs[:2], nil)))
	fulcrum := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}

	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	x, err := askOn(c)
	if err != nil {
		t.Fatal(err)
	}
	drained, other := bs[0], bs[1]
	if x == bs[1].name {
		drained, other = bs[1], bs[0]
	}

	// Without the token the node refuses.
	if _, stderr, code := fulcrum("backend", "drain", "web", drained.addr, "--admin", n.admin); code != 1 || !strings.Contains(stderr, "bearer token") {
		t.Fatalf("drain without a token: exit %d, %q", code, stderr)
	}
	out, stderr, code := fulcrum("backend", "drain", "web", drained.addr, "-c", n.config)
	if code != 0 || !strings.HasPrefix(out, "web "+drained.addr+": drain,") {
		t.Fatalf("backend drain: exit %d, %q %q", code, out, stderr)
	}
	if got, err := askOn(c); err != nil || got != drained.name {
		t.Errorf("established connection after drain: %q, %v; want %s", got, err, drained.name)
	}
	for range 4 {
		if got, err := ask(listen); err != nil || got != other.name {
			t.Fatalf("new connection after drain: %q, %v; want %s", got, err, other.name)
		}
	}
	if out, stderr, code = fulcrum("backend", "weight", "web", other.addr, "3", "-c", n.config); code != 0 {
		t.Fatalf("backend weight: exit %d, %q", code, stderr)
	}
	out, _, _ = fulcrum("status", "-c", n.config)
	for _, re := range []string{
		`(?m)^\s+-> ` + regexp.QuoteMeta(drained.addr) + `\s+primary\s+up\s+drain\s+1\s`,
		`(?m)^\s+-> ` + regexp.QuoteMeta(other.addr) + `\s+primary\s+up\s+ready,weight\s+3\s`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status does not match %s:\n%s", re, out)
		}
	}

	// A valid file: the third backend arrives, the runtime weight goes,
	// the drain stays.
	n.writeConfig(withToken(tcpConfig(listen, "rr", "", bs, nil)))
	out, stderr, code = fulcrum("reload", "-c", n.config)
	if code != 0 || !strings.HasPrefix(out, "reloaded: config ") {
		t.Fatalf("reload: exit %d, %q %q", code, out, stderr)
	}
	st, web := n.status(), n.service("web")
	if len(web.Backends) != 3 {
		t.Fatalf("after reload: %d backends, want 3", len(web.Backends))
	}
	for _, b := range web.Backends {
		want := "ready"
		if b.Address == drained.addr {
			want = "drain"
		}
		if b.AdminState != want || b.Weight != 1 || b.Runtime != "" {
			t.Errorf("after reload: %s admin_state %s weight %d runtime %q, want %s, 1, none", b.Address, b.AdminState, b.Weight, b.Runtime, want)
		}
	}
	hash := st.ConfigHash

	// An invalid file: every error, from the node, and nothing changes.
	n.writeConfig(withToken(tcpConfig(listen, "rrr", "", bs, []int{1, 1, 70000})))
	out, stderr, code = fulcrum("reload", "-c", n.config)
	if code != 1 || out != "" {
		t.Errorf("invalid reload: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	for _, want := range []string{"rejected", "the running config is unchanged", "scheduler", "weight"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("invalid reload: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if st := n.status(); st.ConfigHash != hash || st.Reloads.Failed != 1 {
		t.Errorf("after the invalid reload: hash %s failed %d; want %s and 1", st.ConfigHash, st.Reloads.Failed, hash)
	}
	if got, err := askOn(c); err != nil || got != drained.name {
		t.Errorf("established connection at the end: %q, %v", got, err)
	}
}

// TestAutoreload: with autoreload: true the real binary picks up a
// rewritten file without a signal, and keeps running on an invalid one.
func TestAutoreload(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 2)
	listen := freeAddr(t, "tcp")
	n := startNode(t, "autoreload: true\n"+tcpConfig(listen, "rr", "", bs[:1], nil))
	waitReloads := func(what string, done func(admin.Reloads) bool) admin.Reloads {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := n.status().Reloads
			if done(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: reloads %+v after 10s", what, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	n.writeConfig("autoreload: true\n" + tcpConfig(listen, "rr", "", bs, nil))
	waitReloads("valid rewrite", func(r admin.Reloads) bool { return r.OK == 1 })
	seen := map[string]bool{}
	for range 4 {
		name, err := ask(listen)
		if err != nil {
			t.Fatal(err)
		}
		seen[name] = true
	}
	if !seen[bs[0].name] || !seen[bs[1].name] {
		t.Errorf("after autoreload: answers from %v, want both backends", seen)
	}
	n.writeConfig("autoreload: true\n" + tcpConfig(listen, "nope", "", bs, nil))
	r := waitReloads("invalid rewrite", func(r admin.Reloads) bool { return r.Failed == 1 })
	// The status may count the failure a moment before the log line is
	// written.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(n.Logs(), "reload rejected") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(r.LastError, "scheduler") || !strings.Contains(n.Logs(), "reload rejected") {
		t.Errorf("invalid rewrite: last error %q; the log should say the reload was rejected", r.LastError)
	}
	if _, err := ask(listen); err != nil {
		t.Errorf("service after the invalid rewrite: %v", err)
	}
}
