package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin/ui"
	"github.com/fulcrum-lb/fulcrum/internal/browsertest"
)

// fakeCluster is a Source whose backends' admin state follows the
// SetAdminState calls it records; the other actions are fakeControl's.
type fakeCluster struct {
	fakeControl
	smu sync.Mutex
	st  Status
}

func (f *fakeCluster) Status() Status {
	f.smu.Lock()
	defer f.smu.Unlock()
	st := f.st
	st.Services = slices.Clone(st.Services)
	for i := range st.Services {
		st.Services[i].Backends = slices.Clone(st.Services[i].Backends)
	}
	return st
}

func (f *fakeCluster) SetAdminState(_ context.Context, service, address, state string) (Backend, error) {
	if err := f.record("state %s %s %s", service, address, state); err != nil {
		return Backend{}, err
	}
	f.smu.Lock()
	defer f.smu.Unlock()
	for i, s := range f.st.Services {
		if s.Name != service {
			continue
		}
		for j, b := range s.Backends {
			if b.Address == address {
				f.st.Services[i].Backends[j].AdminState = state
				return f.st.Services[i].Backends[j], nil
			}
		}
	}
	return Backend{}, fmt.Errorf("service %s has no backend %s: %w", service, address, ErrNotFound)
}

func (f *fakeCluster) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

const dashToken = "dashboard-test-token-0123456789"

func dashStatus() Status {
	now := time.Now().UTC()
	health := func(up bool) *Health {
		h := &Health{Check: "tcp", State: "up", Since: now.Add(-time.Hour), LastCheck: now.Add(-time.Second), LastDurationMS: 0.4, LastOK: true, Checks: 1800, Shared: 1}
		if !up {
			h.State, h.LastOK, h.LastReason, h.Failures = "down", false, "connect: connection refused", 3
		}
		return h
	}
	return Status{
		Node: "lb1", Version: "v0.9.0", ConfigHash: "0123456789abcdef0123", Started: now.Add(-2 * time.Hour),
		HA: []HAGroup{{
			Name: "web", Interface: "eth0", VRID: 51, VIPs: []string{"192.0.2.10/24"}, State: "master", Since: now.Add(-time.Hour),
			Priority: 150, ConfiguredPriority: 150, Preempt: true, Master: "192.0.2.1", Transitions: 2, AdvertsSent: 3600, VIPsHeld: 1,
			Peers: []HAPeer{{Address: "192.0.2.2", Priority: 100, LastHeard: now, ConfigHash: "ffffeeee"}},
		}},
		Services: []Service{
			{
				Name: "web", Protocol: "tcp", Listen: "192.0.2.10:80", Scheduler: "wlc",
				Counters: Counters{Accepted: 1234, Active: 3},
				Backends: []Backend{
					{Address: "127.0.0.1:81", Role: RolePrimary, Weight: 1, Healthy: true, Available: true, AdminState: "ready", Active: 2, Total: 800, BytesIn: 123456, BytesOut: 9876543, Health: health(true)},
					{Address: "[::1]:82", Role: RolePrimary, Weight: 3, Healthy: true, Available: true, AdminState: "ready", Active: 1, Total: 434, Health: health(true)},
					{Address: "127.0.0.1:83", Role: RoleBackup, Weight: 1, Healthy: false, AdminState: "ready", Health: health(false)},
				},
			},
			{
				// A hostile name must come out as text, not markup.
				Name: `<img src=x id=xss>`, Protocol: "udp", Listen: "192.0.2.10:53", Scheduler: "rr",
				Backends: []Backend{{Address: "127.0.0.1:53", Role: RolePrimary, Weight: 1, Healthy: true, Available: true, AdminState: "ready"}},
			},
		},
	}
}

// serveDashboard runs the admin server on loopback and returns its
// address and a function that stops it.
func serveDashboard(t *testing.T, f *fakeCluster, token string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := New(Options{Source: f, Control: f, Token: func() string { return token },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	addr, _ := serveDashboard(t, &fakeCluster{st: dashStatus()}, dashToken)
	for _, p := range []string{"/", "/ui/", "/ui/app.js", "/ui/style.css"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != ui.ContentSecurityPolicy {
			t.Errorf("GET %s: got %d with CSP %q, want 200 with the dashboard's policy", p, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	for _, p := range []string{"/nope", "/ui/nope"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", p, resp.StatusCode)
		}
	}
	resp, err := http.Post("http://"+addr+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: got %d, want 405", resp.StatusCode)
	}
}

// A page on another site must not make the operator's browser act on
// the admin API (cross-site request forgery against a loopback listener).
func TestCrossSiteActionsRefused(t *testing.T) {
	t.Parallel()
	f := &fakeCluster{st: dashStatus()}
	addr, _ := serveDashboard(t, f, "") // no token: loopback clients may act
	post := func(hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/services/web/backends/127.0.0.1:81/drain", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("answer %d is not JSON: %v", resp.StatusCode, err)
		} else if resp.StatusCode != http.StatusOK && !strings.Contains(fmt.Sprint(body["error"]), "cross-origin request refused") {
			t.Errorf("answer %d: got %v, want a cross-origin error", resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	if got := post(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); got != http.StatusForbidden {
		t.Errorf("cross-site POST: got %d, want 403", got)
	}
	if got := post(map[string]string{"Origin": "https://evil.example"}); got != http.StatusForbidden {
		t.Errorf("POST from another origin: got %d, want 403", got)
	}
	if calls := f.recorded(); len(calls) != 0 {
		t.Errorf("refused requests reached the controller: %q", calls)
	}
	// The dashboard itself (same origin) and the CLI (no browser headers)
	// still may.
	if got := post(map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + addr}); got != http.StatusOK {
		t.Errorf("same-origin POST: got %d, want 200", got)
	}
	if got := post(nil); got != http.StatusOK {
		t.Errorf("POST without browser headers: got %d, want 200", got)
	}
}

func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	tab := browsertest.New(t, 120*time.Second)
	f := &fakeCluster{st: dashStatus()}
	addr, stop := serveDashboard(t, f, dashToken)

	tab.Navigate("http://"+addr+"/", 1400, 900)

	stateOf := func(address string) string {
		return fmt.Sprintf(`document.querySelector('tr[data-service="web"][data-backend=%q] td.admin-state .pill')?.textContent`, address)
	}
	waitState := func(address, want string) {
		t.Helper()
		tab.WaitFor(20*time.Second, stateOf(address)+` === "`+want+`"`)
	}
	button := func(action, address string) string {
		return fmt.Sprintf(`tr[data-service="web"][data-backend=%q] button[data-action=%q]`, address, action)
	}
	waitState("127.0.0.1:81", "ready")

	// What the page shows.
	text := browsertest.Eval[string](tab, `document.body.innerText`)
	for _, want := range []string{"lb1", "v0.9.0", "0123456789ab", "master", "192.0.2.2 (100) different config", "held 1/1", "127.0.0.1:83", "connect: connection refused", "1,234", "9.42 MiB", "<img src=x id=xss>"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q; it shows:\n%s", want, text)
		}
	}
	if browsertest.Eval[bool](tab, `document.getElementById("xss") !== null`) {
		t.Error("a service name was rendered as markup")
	}

	// Without the token the API refuses, and the page says so.
	tab.Click(button("drain", "127.0.0.1:81"))
	tab.WaitFor(0, `[...document.querySelectorAll("#messages .banner.error")].some(e => e.textContent.includes("HTTP 401") && e.textContent.includes("enter the admin token"))`)
	if calls := f.recorded(); len(calls) != 0 {
		t.Fatalf("controller called without a token: %q", calls)
	}

	// A wrong token is refused too.
	tab.Type("#token", "wrong-token-wrong-token")
	tab.Click("#token-save")
	tab.WaitFor(0, `document.getElementById("token-state").textContent === "token set for this tab"`)
	tab.Click(button("disable", "127.0.0.1:81"))
	tab.WaitFor(0, `document.querySelectorAll("#messages .banner.error").length === 2`)

	// With the token: drain, disable, enable, and an IPv6 backend whose
	// address must be escaped in the URL.
	tab.Type("#token", dashToken)
	tab.Click("#token-save")
	tab.WaitFor(0, `document.getElementById("token-state").textContent === "token set for this tab"`)
	tab.Click(button("drain", "127.0.0.1:81"))
	waitState("127.0.0.1:81", "drain")
	tab.WaitFor(0, `document.querySelector(`+"`"+`tr[data-backend="127.0.0.1:81"] button[data-action="drain"]`+"`"+`).disabled`)
	tab.Click(button("disable", "127.0.0.1:81"))
	waitState("127.0.0.1:81", "maint")
	tab.Click(button("drain", "[::1]:82"))
	waitState("[::1]:82", "drain")
	tab.Click(button("enable", "127.0.0.1:81"))
	waitState("127.0.0.1:81", "ready")
	if out := os.Getenv("FULCRUM_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, tab.Screenshot(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"state web 127.0.0.1:81 drain", "state web 127.0.0.1:81 maint", "state web [::1]:82 drain", "state web 127.0.0.1:81 ready"}
	if got := f.recorded(); !slices.Equal(got, want) {
		t.Errorf("controller calls: got %q, want %q", got, want)
	}
	// The token survives a reload of the page (sessionStorage), not the
	// field: the field is cleared once used.
	tab.Navigate("http://"+addr+"/ui/", 1400, 900)
	tab.WaitFor(0, `document.getElementById("token-state").textContent === "token set for this tab" && document.getElementById("token").value === ""`)
	waitState("[::1]:82", "drain")

	// The page must have broken none of its own rules: no exceptions, no
	// CSP violations, no console errors. The browser logs the refused
	// requests above as failed loads; those are expected.
	for _, pr := range tab.Problems() {
		if !strings.HasPrefix(pr, "log/network/") {
			t.Errorf("page problem: %s", pr)
		}
	}

	// When the API goes away the page says so and keeps the last data.
	banner := `getComputedStyle(document.getElementById("fetch-error")).display`
	if display := browsertest.Eval[string](tab, banner); display != "none" {
		t.Errorf("fetch error banner shown while the API answers: display %q", display)
	}
	stop()
	tab.WaitFor(0, banner+` !== "none" && document.getElementById("fetch-error").textContent.includes("Cannot read /api/v1/status")`)
	tab.WaitFor(0, stateOf("[::1]:82")+` === "drain"`)
}
