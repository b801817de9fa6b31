package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// httpBackend answers every request with its name.
func httpBackend(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func get(t *testing.T, url string) string {
	t.Helper()
	// A new connection each time: an engine applies a reload to new
	// connections.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func httpYAML(listen, main, api, extra string) string {
	return fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: web
    listen: %s
    protocol: http
    scheduler: rr
    backends: [{ address: %s }]
    http:
%s      routes:
        - { name: api, path_prefix: /api/, backends: [{ address: %s }] }
`, listen, main, extra, api)
}

func TestHTTPServiceRoutesAcrossReload(t *testing.T) {
	t.Parallel()
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	web := freeTCP(t)
	td := startDaemon(t, httpYAML(web, main, api, ""))
	if got := get(t, "http://"+web+"/index.html"); got != "main" {
		t.Errorf("GET /index.html: got %q, want main", got)
	}
	if got := get(t, "http://"+web+"/api/users"); got != "api" {
		t.Errorf("GET /api/users: got %q, want api", got)
	}

	logPath := filepath.Join(t.TempDir(), "access.log")
	if err := td.reload(httpYAML(web, main, api, "      access_log: { path: "+logPath+", format: json }\n")); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := get(t, "http://"+web+"/api/v2"); got != "api" {
		t.Errorf("after reload: got %q, want api", got)
	}

	st := td.d.Status()
	s := st.Services[0]
	if s.HTTP == nil || s.HTTP.Requests != 3 || s.HTTP.Status2xx != 3 {
		t.Errorf("http counters across reload: got %+v, want 3 requests, 3 2xx", s.HTTP)
	}
	if len(s.Routes) != 1 || s.Routes[0].Name != "web/api" || s.Routes[0].PathPrefix != "/api/" || len(s.Routes[0].Backends) != 1 {
		t.Fatalf("routes: got %+v, want the pool web/api with one backend", s.Routes)
	}
	// The route's backend is the same one across the reload: its request
	// counter went on from 1 to 2.
	if rq := s.Routes[0].Backends[0].Requests; rq != 2 {
		t.Errorf("route backend requests: got %d, want 2", rq)
	}
	if rq := s.Backends[0].Requests; rq != 1 {
		t.Errorf("main backend requests: got %d, want 1", rq)
	}

	// Lines are flushed within a second; removing the access log from the
	// config closes the writer after the drain timeout, flushing first.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), `"path":"/api/v2"`) && strings.Contains(string(b), `"service":"web"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log: got %q, want the request to /api/v2", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPAccessLogUnwritableRejectsReload(t *testing.T) {
	t.Parallel()
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	web := freeTCP(t)
	td := startDaemon(t, httpYAML(web, main, api, ""))
	dir := t.TempDir()
	// A directory where the file should be: validation refuses it.
	if err := os.Mkdir(filepath.Join(dir, "log"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := td.reload(httpYAML(web, main, api, "      access_log: { path: "+filepath.Join(dir, "log")+" }\n"))
	if err == nil || !strings.Contains(err.Error(), "access_log.path") {
		t.Errorf("reload: got %v, want an access_log.path error", err)
	}
	if got := get(t, "http://"+web+"/"); got != "main" {
		t.Errorf("after the rejected reload: got %q, want main", got)
	}
}

func TestHTTPRouteBackendsAreHealthChecked(t *testing.T) {
	t.Parallel()
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	_, apiPort, _ := strings.Cut(api, ":")
	web := freeTCP(t)
	// The service's check goes to a closed port (not port 1: another test
	// on the machine may listen there): the main backend stays down. The
	// route's backend overrides the port with its own: up.
	_, closed, _ := strings.Cut(freeTCP(t), ":")
	td := startDaemon(t, fmt.Sprintf(`admin: { listen: "off" }
services:
  - name: web
    listen: %s
    protocol: http
    health: { type: tcp, port: %s, interval: 50ms, rise: 1, fall: 1, initial: down }
    backends: [{ address: %s }]
    http:
      routes:
        - name: api
          path_prefix: /api/
          backends: [{ address: %s, health: { port: %s } }]
`, web, closed, main, api, apiPort))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := td.d.Status().Services[0]
		rb := st.Routes[0].Backends[0]
		if rb.Health != nil && rb.Health.State == "up" && rb.Healthy {
			if mb := st.Backends[0]; mb.Health == nil || mb.Health.State != "down" || mb.Healthy {
				t.Fatalf("main backend: got %+v, want checked and down", mb)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route backend: got %+v, want checked and up", rb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := get(t, "http://"+web+"/api/x"); got != "api" {
		t.Errorf("GET /api/x: got %q, want api", got)
	}
	// HA tracking counts the route pool: the service still serves.
	if ok, why := (haHost{td.d}).ServiceAlive("web"); !ok {
		t.Errorf("tracked service with its own backend down and its route's up: failed (%s), want alive", why)
	}
	resp, err := http.Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("GET / with the main backend down: got %d, want 503", resp.StatusCode)
	}
}

func TestAlertHooksHearRoutePools(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("f.yaml", []byte(`services:
  - name: web
    listen: 10.0.0.1:80
    protocol: http
    backends: [{ address: 10.0.0.11:80 }]
    http: { routes: [{ name: api, path_prefix: /api/, backends: [{ address: 10.0.0.12:80 }] }] }
alerts:
  - { name: all-web, exec: [/bin/true], services: [web] }
  - { name: api-only, exec: [/bin/true], services: [web/api] }
`))
	if err != nil {
		t.Fatal(err)
	}
	hooks := alertHooks(cfg)
	if got := strings.Join(hooks[0].Services, ","); got != "web,web/api" {
		t.Errorf("hook for the service: got services %q, want web,web/api", got)
	}
	if got := strings.Join(hooks[1].Services, ","); got != "web/api" {
		t.Errorf("hook for the pool: got services %q, want web/api", got)
	}
	if _, err := config.Parse("f.yaml", []byte(strings.Replace(string(mustRead(t, cfg)), "web/api", "web/nope", 1))); err == nil {
		t.Errorf("alert on an unknown pool: got no error")
	}
}

func mustRead(t *testing.T, c *config.Config) []byte {
	t.Helper()
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoutePoolBackendControl: a route pool's backend is addressed as
// SERVICE/ROUTE by the runtime controls, like a service's.
func TestRoutePoolBackendControl(t *testing.T) {
	t.Parallel()
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	web := freeTCP(t)
	td := startDaemon(t, httpYAML(web, main, api, ""))
	ctx := context.Background()
	if got := get(t, "http://"+web+"/api/x"); got != "api" {
		t.Fatalf("GET /api/x: got %q, want api", got)
	}
	b, err := td.d.SetAdminState(ctx, "web/api", api, "maint")
	if err != nil || b.AdminState != "maint" {
		t.Fatalf("maint on web/api %s: %+v, %v", api, b, err)
	}
	resp, err := http.Get("http://" + web + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("GET /api/x with the pool's only backend in maintenance: %d, want 503", resp.StatusCode)
	}
	if _, err := td.d.SetAdminState(ctx, "web/api", api, "ready"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, "http://"+web+"/api/x"); got != "api" {
		t.Errorf("GET /api/x after enable: got %q, want api", got)
	}
	if _, err := td.d.SetWeight(ctx, "web/api", api, 7); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("weight on a route pool's backend: %v, want refused (the file sets it)", err)
	}
	if _, err := td.d.SetAdminState(ctx, "web/nope", api, "drain"); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("unknown pool: %v, want not found", err)
	}
}

// TestHTTPAccessLogWriteErrorsShown: writes to an access log that fail (a
// full disk: /dev/full answers every write with ENOSPC) are shown in the
// status, hence in /metrics and `fulcrum status`.
func TestHTTPAccessLogWriteErrorsShown(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	web := freeTCP(t)
	td := startDaemon(t, httpYAML(web, main, api, "      access_log: { path: /dev/full }\n"))
	get(t, "http://"+web+"/")
	// The writer flushes every second: the failure follows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := td.d.Status()
		if len(st.AccessLogs) == 1 && st.AccessLogs[0].WriteErrors > 0 {
			l := st.AccessLogs[0]
			if l.Path != "/dev/full" || l.LinesLost != 1 || !strings.Contains(l.LastError, "no space left") {
				t.Errorf("got %+v, want /dev/full with 1 line lost and ENOSPC", l)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access logs in the status: got %+v, want a write error", st.AccessLogs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPPollerSwitch: http.poller reaches the engine and the status
// says which way reads wait.
func TestHTTPPollerSwitch(t *testing.T) {
	t.Parallel()
	main, api := httpBackend(t, "main"), httpBackend(t, "api")
	web := freeTCP(t)
	td := startDaemon(t, httpYAML(web, main, api, "      poller: false\n"))
	if got := get(t, "http://"+web+"/"); got != "main" {
		t.Errorf("GET /: got %q, want main", got)
	}
	if h := td.d.Status().Services[0].HTTP; h == nil || h.Poller != "off" {
		t.Fatalf("with poller: false: got %+v, want poller off", h)
	}
	if err := td.reload(httpYAML(web, main, api, "")); err != nil {
		t.Fatalf("reload: %v", err)
	}
	want := "on"
	if runtime.GOOS != "linux" {
		want = "failed" // no epoll
	}
	if h := td.d.Status().Services[0].HTTP; h == nil || h.Poller != want {
		t.Fatalf("by default: got %+v, want poller %s", h, want)
	}
	if got := get(t, "http://"+web+"/"); got != "main" {
		t.Errorf("GET / after the reload: got %q, want main", got)
	}
}
