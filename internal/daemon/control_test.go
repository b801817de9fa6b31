package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// client is one long-lived connection through the balancer.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// ask sends a line and returns the name of the backend that echoed it.
func (c *client) ask() (string, error) {
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, "hi\n"); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	return strings.TrimSuffix(line, ":hi\n"), err
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// backendOf returns the status of backend addr of the first service.
func backendOf(t *testing.T, d *Daemon, addr string) admin.Backend {
	t.Helper()
	for _, b := range d.Status().Services[0].Backends {
		if b.Address == addr {
			return b
		}
	}
	t.Fatalf("no backend %s in the status", addr)
	return admin.Backend{}
}

func seen(t *testing.T, web string, n int) map[string]int {
	t.Helper()
	m := map[string]int{}
	for range n {
		m[ask(t, web)]++
	}
	return m
}

func TestDrainKeepsConnectionsAndSendsNoNewOnes(t *testing.T) {
	t.Parallel()
	addr := map[string]string{"b1": echoBackend(t, "b1"), "b2": echoBackend(t, "b2")}
	web := freeTCP(t)
	yaml := "admin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, addr["b1"], addr["b2"])
	td := startDaemon(t, yaml)

	c := dialClient(t, web)
	x, err := c.ask()
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"b1": "b2", "b2": "b1"}[x]
	b, err := td.d.SetAdminState(ctx(t), "web", addr[x], "drain")
	if err != nil {
		t.Fatal(err)
	}
	if b.AdminState != "drain" || b.Available || !b.Healthy {
		t.Errorf("drained backend: got admin_state %q available %v healthy %v, want drain, false, true", b.AdminState, b.Available, b.Healthy)
	}
	if got, err := c.ask(); err != nil || got != x {
		t.Errorf("established connection after drain: got %q, %v; want %s to keep answering", got, err, x)
	}
	if m := seen(t, web, 6); m[other] != 6 {
		t.Errorf("new connections after draining %s: got %v, want all on %s", x, m, other)
	}

	// The admin state survives a reload of a file that still has the
	// backend.
	if err := td.reload(yaml); err != nil {
		t.Fatal(err)
	}
	if got := backendOf(t, td.d, addr[x]).AdminState; got != "drain" {
		t.Errorf("after reload: admin_state %q, want drain", got)
	}
	if m := seen(t, web, 4); m[other] != 4 {
		t.Errorf("after reload: got %v, want all on %s", m, other)
	}
	if _, err := td.d.SetAdminState(ctx(t), "web", addr[x], "ready"); err != nil {
		t.Fatal(err)
	}
	if m := seen(t, web, 4); m[x] != 2 || m[other] != 2 {
		t.Errorf("enabled again: got %v, want 2 each under rr", m)
	}
	if got, err := c.ask(); err != nil || got != x {
		t.Errorf("the first connection at the end: got %q, %v", got, err)
	}
}

// Maintenance sends no new connections; the established ones go as from
// a backend that is down: closed after removal_grace when the service is
// not quiescent, kept when it is.
func TestMaintenance(t *testing.T) {
	t.Parallel()
	for _, quiescent := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiescent=%v", quiescent), func(t *testing.T) {
			t.Parallel()
			addr := map[string]string{"b1": echoBackend(t, "b1"), "b2": echoBackend(t, "b2")}
			web := freeTCP(t)
			td := startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
shutdown: { drain_timeout: 100ms }
services:
  - name: web
    listen: %s
    scheduler: rr
    quiescent: %v
    removal_grace: 200ms
    backends: [ { address: %s }, { address: %s } ]
`, web, quiescent, addr["b1"], addr["b2"]))
			c := dialClient(t, web)
			x, err := c.ask()
			if err != nil {
				t.Fatal(err)
			}
			other := map[string]string{"b1": "b2", "b2": "b1"}[x]
			if b, err := td.d.SetAdminState(ctx(t), "web", addr[x], "maint"); err != nil || b.AdminState != "maint" {
				t.Fatalf("disable: %+v, %v", b, err)
			}
			if m := seen(t, web, 4); m[other] != 4 {
				t.Errorf("new connections in maintenance: got %v, want all on %s", m, other)
			}
			time.Sleep(time.Second) // well past removal_grace
			got, err := c.ask()
			if quiescent && (err != nil || got != x) {
				t.Errorf("quiescent: established connection got %q, %v; want it kept on %s", got, err, x)
			}
			if !quiescent && err == nil {
				t.Errorf("not quiescent: established connection still answered by %q a second after maint, want it closed", got)
			}
			if h := backendOf(t, td.d, addr[x]); !h.Healthy {
				t.Error("maintenance marked the backend unhealthy; health is the checks' business")
			}
		})
	}
}

func TestRuntimeWeightAndReload(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	web := freeTCP(t)
	yaml := "admin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, b1, b2)
	td := startDaemon(t, yaml)
	hash := td.d.Status().ConfigHash

	b, err := td.d.SetWeight(ctx(t), "web", b1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Weight != 0 || b.Runtime != "weight" {
		t.Errorf("weight 0: got weight %d runtime %q, want 0 and \"weight\"", b.Weight, b.Runtime)
	}
	if m := seen(t, web, 4); m["b2"] != 4 {
		t.Errorf("b1 at weight 0: got %v, want all on b2", m)
	}
	if b, err = td.d.SetWeight(ctx(t), "web", b1, 3); err != nil || b.Weight != 3 {
		t.Fatalf("weight 3: %+v, %v", b, err)
	}
	if got := td.d.Status().ConfigHash; got != hash {
		t.Errorf("config hash changed with a runtime weight: %s, want the file's %s", got, hash)
	}

	for _, tt := range []struct {
		name, service, addr string
		weight              int
		want                error
	}{
		{"weight too big", "web", b1, 65536, admin.ErrInvalid},
		{"negative weight", "web", b1, -1, admin.ErrInvalid},
		{"unknown service", "nope", b1, 1, admin.ErrNotFound},
		{"unknown backend", "web", "127.0.0.1:1", 1, admin.ErrNotFound},
		{"bad address", "web", "localhost:80", 1, admin.ErrInvalid},
	} {
		if _, err := td.d.SetWeight(ctx(t), tt.service, tt.addr, tt.weight); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}

	// The file replaces runtime weights.
	if err := td.reload(yaml); err != nil {
		t.Fatal(err)
	}
	if b := backendOf(t, td.d, b1); b.Weight != 1 || b.Runtime != "" {
		t.Errorf("after reload: weight %d runtime %q, want the file's 1 and none", b.Weight, b.Runtime)
	}
}

func TestAddAndRemoveBackends(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	dead := freeTCP(t) // nothing listens: its health check fails
	web := freeTCP(t)
	yaml := fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: web
    listen: %s
    scheduler: rr
    health: { type: tcp, interval: 50ms, timeout: 500ms, fall: 1, rise: 1 }
    backends: [ { address: %s } ]
`, web, b1)
	td := startDaemon(t, yaml)
	c := dialClient(t, web)
	if got, err := c.ask(); err != nil || got != "b1" {
		t.Fatalf("first connection: %q, %v", got, err)
	}

	w := 2
	b, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: b2, Weight: &w})
	if err != nil {
		t.Fatal(err)
	}
	if b.Runtime != "added" || b.Weight != 2 || b.Role != admin.RolePrimary || b.Health == nil {
		t.Errorf("added backend: %+v; want runtime added, weight 2, primary, with the service's health check", b)
	}
	if m := seen(t, web, 4); m["b1"] != 2 || m["b2"] != 2 {
		t.Errorf("after adding b2: got %v, want 2 each under rr", m)
	}
	if _, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: b2}); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("adding b2 twice: got %v, want ErrInvalid", err)
	}
	if _, err := td.d.AddBackend(ctx(t), "nope", admin.NewBackend{Address: b2}); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("adding to an unknown service: got %v, want ErrNotFound", err)
	}
	if _, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: dead, Backup: true}); err != nil {
		t.Fatal(err)
	}
	// The added backend is checked like the others: it goes down.
	deadline := time.Now().Add(5 * time.Second)
	for backendOf(t, td.d, dead).Healthy && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if h := backendOf(t, td.d, dead); h.Healthy || h.Role != admin.RoleBackup {
		t.Errorf("added backup with nothing listening: healthy %v role %s, want down backup", h.Healthy, h.Role)
	}

	// Removing b1 sends it nothing new; the service is quiescent, so the
	// established connection continues.
	if b, err = td.d.RemoveBackend(ctx(t), "web", b1); err != nil || b.Address != b1 {
		t.Fatalf("remove b1: %+v, %v", b, err)
	}
	if m := seen(t, web, 4); m["b2"] != 4 {
		t.Errorf("after removing b1: got %v, want all on b2", m)
	}
	if got, err := c.ask(); err != nil || got != "b1" {
		t.Errorf("connection to the removed b1: got %q, %v; want it kept (quiescent)", got, err)
	}
	st := td.d.Status().Services[0]
	if len(st.Removed) != 1 || st.Removed[0] != b1 {
		t.Errorf("status removed: %v, want [%s]", st.Removed, b1)
	}
	if _, err := td.d.RemoveBackend(ctx(t), "web", b1); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("removing b1 twice: got %v, want ErrNotFound", err)
	}
	// Added back with another weight: an added backend, not a removed one.
	if b, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: b1, Weight: &w}); err != nil || b.Runtime != "added" || b.Weight != 2 {
		t.Fatalf("adding b1 back: %+v, %v", b, err)
	}
	if st := td.d.Status().Services[0]; len(st.Removed) != 0 {
		t.Errorf("b1 added back, yet status lists it removed: %v", st.Removed)
	}
	if _, err := td.d.RemoveBackend(ctx(t), "web", b1); err != nil {
		t.Fatal(err)
	}
	if st := td.d.Status().Services[0]; len(st.Removed) != 1 {
		t.Errorf("b1 removed again: status removed %v, want it", st.Removed)
	}
	if _, err := td.d.RemoveBackend(ctx(t), "web", dead); err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.RemoveBackend(ctx(t), "web", b2); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("removing the last backend: got %v, want ErrInvalid", err)
	}

	// A reload restores the file: b1 alone.
	if err := td.reload(yaml); err != nil {
		t.Fatal(err)
	}
	st = td.d.Status().Services[0]
	if len(st.Backends) != 1 || st.Backends[0].Address != b1 || st.Backends[0].Runtime != "" || len(st.Removed) != 0 {
		t.Errorf("after reload: backends %+v removed %v, want the file's b1 alone", st.Backends, st.Removed)
	}
	if m := seen(t, web, 2); m["b1"] != 2 {
		t.Errorf("after reload: got %v, want b1", m)
	}
}

func TestReloadConfig(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	web := freeTCP(t)
	td := startDaemon(t, "admin: { listen: \"off\" }\nservices:\n"+svcYAML("web", web, b1))
	td.mu.Lock()
	td.yaml = "admin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, b1, b2)
	td.mu.Unlock()
	hash, err := td.d.ReloadConfig(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st := td.d.Status(); st.ConfigHash != hash || len(st.Services[0].Backends) != 2 {
		t.Errorf("reload: hash %s, status %s with %d backends", hash, st.ConfigHash, len(st.Services[0].Backends))
	}
	td.mu.Lock()
	td.yaml = "services:\n  - name: web\n    listen: nowhere\n    scheduler: nope\n    backends: []\n"
	td.mu.Unlock()
	_, err = td.d.ReloadConfig(ctx(t))
	var rej *admin.RejectedError
	if !errors.As(err, &rej) || len(rej.Errors) < 3 {
		t.Fatalf("invalid reload: got %v, want a RejectedError with every problem", err)
	}
	for _, want := range []string{"services[0].listen", "services[0].scheduler", "services[0].backends"} {
		if !strings.Contains(strings.Join(rej.Errors, "\n"), want) {
			t.Errorf("rejection lacks %s: %q", want, rej.Errors)
		}
	}
	if st := td.d.Status(); st.ConfigHash != hash {
		t.Errorf("after a rejected reload: hash %s, want %s", st.ConfigHash, hash)
	}
	if m := seen(t, web, 2); m["b1"] != 1 || m["b2"] != 1 {
		t.Errorf("after a rejected reload: got %v, want the running config", m)
	}
}

// writeFile replaces path the way editors and config management do: a
// new file renamed over the old one.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestAutoreload(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	web := freeTCP(t)
	path := filepath.Join(t.TempDir(), "fulcrum.yaml")
	cfg := func(autoreload bool, backends ...string) string {
		return fmt.Sprintf("autoreload: %v\nadmin: { listen: \"off\" }\nservices:\n", autoreload) + svcYAML("web", web, backends...)
	}
	if err := os.WriteFile(path, []byte(cfg(true, b1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	d := New(Options{
		Load: func() (*config.Config, error) {
			c, err := config.Load(path)
			if err != nil {
				return nil, err
			}
			return c, Plan(c)
		},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func() { close(ready) },
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	waitFor := func(what string, ok func(admin.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(d.Status()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s; status reloads %+v", what, d.Status().Reloads)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Nothing changed: no reload.
	time.Sleep(1500 * time.Millisecond)
	if r := d.Status().Reloads; r.OK+r.Failed != 0 {
		t.Fatalf("reloads without a change: %+v", r)
	}
	writeFile(t, path, cfg(true, b1, b2))
	waitFor("valid change picked up", func(st admin.Status) bool { return len(st.Services[0].Backends) == 2 })
	if m := seen(t, web, 2); m["b1"] != 1 || m["b2"] != 1 {
		t.Errorf("after autoreload: got %v, want both backends", m)
	}

	hash := d.Status().ConfigHash
	writeFile(t, path, cfg(true, b1, b2)+"    bogus: 1\n")
	waitFor("invalid change rejected", func(st admin.Status) bool { return st.Reloads.Failed == 1 })
	st := d.Status()
	if !strings.Contains(st.Reloads.LastError, path+":") || !strings.Contains(st.Reloads.LastError, "bogus") {
		t.Errorf("rejection: %q, want file:line and the bad key", st.Reloads.LastError)
	}
	if st.ConfigHash != hash || len(st.Services[0].Backends) != 2 {
		t.Errorf("after the invalid file: hash %s, %d backends; want the running config", st.ConfigHash, len(st.Services[0].Backends))
	}
	// The invalid file is not retried every second.
	time.Sleep(2500 * time.Millisecond)
	if r := d.Status().Reloads; r.Failed != 1 || r.OK != 1 {
		t.Errorf("reloads while the invalid file stays: %+v, want 1 ok, 1 failed", r)
	}

	// Rewritten in place (not renamed), with autoreload turned off.
	if err := os.WriteFile(path, []byte(cfg(false, b1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("fixed file picked up", func(st admin.Status) bool { return st.Reloads.OK == 2 })
	writeFile(t, path, cfg(false, b1, b2))
	time.Sleep(2500 * time.Millisecond)
	if st := d.Status(); st.Reloads.OK != 2 || len(st.Services[0].Backends) != 1 {
		t.Errorf("autoreload off: reloads %+v, %d backends; want no more reloads", st.Reloads, len(st.Services[0].Backends))
	}
}

func TestAdminAPIControl(t *testing.T) {
	t.Parallel()
	b1, b2 := echoBackend(t, "b1"), echoBackend(t, "b2")
	web, adm := freeTCP(t), freeTCP(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	token := "0123456789abcdef-secret"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	td := startDaemon(t, fmt.Sprintf("admin: { listen: %s, token_file: %s }\nservices:\n", adm, tokenFile)+svcYAML("web", web, b1, b2))

	if _, err := admin.SetBackendState(ctx(t), adm, "", "web", b1, "drain"); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("drain without the token: got %v, want refused", err)
	}
	if _, err := admin.SetBackendState(ctx(t), adm, "wrong-token-0123456", "web", b1, "drain"); err == nil {
		t.Error("drain with a wrong token: accepted")
	}
	if b := backendOf(t, td.d, b1); b.AdminState != "ready" {
		t.Fatalf("refused drain changed the state to %s", b.AdminState)
	}
	b, err := admin.SetBackendState(ctx(t), adm, token, "web", b1, "drain")
	if err != nil || b.AdminState != "drain" || b.Address != b1 {
		t.Fatalf("drain with the token: %+v, %v", b, err)
	}
	if m := seen(t, web, 4); m["b2"] != 4 {
		t.Errorf("after the API drained b1: got %v, want all on b2", m)
	}
	if _, err := admin.SetBackendState(ctx(t), adm, token, "web", "127.0.0.1:1", "drain"); err == nil || !strings.Contains(err.Error(), "no backend 127.0.0.1:1") {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := admin.SetBackendWeight(ctx(t), adm, token, "web", b2, 70000); err == nil || !strings.Contains(err.Error(), "0-65535") {
		t.Errorf("weight 70000: %v", err)
	}
	if b, err := admin.SetBackendWeight(ctx(t), adm, token, "web", b2, 5); err != nil || b.Weight != 5 || b.Runtime != "weight" {
		t.Errorf("weight 5: %+v, %v", b, err)
	}
	if _, err := admin.SetBackendState(ctx(t), adm, token, "web", b1, "ready"); err != nil {
		t.Fatal(err)
	}
	hash, err := admin.Reload(ctx(t), adm, token)
	if err != nil || hash != td.d.Status().ConfigHash {
		t.Errorf("reload: %q, %v", hash, err)
	}
	if b := backendOf(t, td.d, b2); b.Weight != 1 {
		t.Errorf("after reload through the API: b2 weight %d, want the file's 1", b.Weight)
	}
}
