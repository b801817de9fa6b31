package admin

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/chromedp/chromedp"
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
func serveDashboard(t *testing.T, f *fakeCluster, token string, tweak ...func(*Options)) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opt := Options{Source: f, Control: f, Token: func() string { return token },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tw := range tweak {
		tw(&opt)
	}
	srv := New(opt)
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

// growingCluster is a fakeCluster whose web service accepts 100
// connections a second by its status's clock (127.0.0.1:81 takes half),
// and whose HA group "web" goes from master to backup when released.
type growingCluster struct {
	*fakeCluster
	start time.Time
}

func (g growingCluster) Status() Status {
	// The time is taken before the state is read, as the daemon does: a
	// change made after it is not in this status.
	now := time.Now()
	st := g.fakeCluster.Status()
	st.Time = now
	ms := uint64(st.Time.Sub(g.start).Milliseconds())
	st.Services[0].Counters.Accepted = ms / 10
	st.Services[0].Backends[0].Total = ms / 20
	return st
}

func (g growingCluster) ReclaimGroup(_ context.Context, name string) error {
	return errors.New("not released")
}

func (g growingCluster) ReleaseGroup(_ context.Context, name string) error {
	g.smu.Lock()
	defer g.smu.Unlock()
	g.st.HA = slices.Clone(g.st.HA) // statuses handed out keep the old one
	for i := range g.st.HA {
		if h := &g.st.HA[i]; h.Name == name && h.State == "master" {
			h.State, h.Since, h.VIPsHeld = "backup", time.Now(), 0
			h.Transitions++
			return nil
		}
	}
	return fmt.Errorf("no such group %s in master state", name)
}

// TestDashboardHistoryInBrowser: the graphs gain a point with every sample
// the node takes and show the rate; the HA timeline shows a transition the
// test causes through the API.
func TestDashboardHistoryInBrowser(t *testing.T) {
	t.Parallel()
	tab := browsertest.New(t, 120*time.Second)
	g := growingCluster{fakeCluster: &fakeCluster{st: dashStatus()}, start: time.Now()}
	addr, _ := serveDashboard(t, g.fakeCluster, dashToken, func(o *Options) {
		o.Source, o.Control, o.HistoryInterval = g, g, time.Second
	})
	tab.Navigate("http://"+addr+"/", 1400, 900)
	// Poll every second, as the node samples.
	browsertest.Eval[chromedp.Void](tab, `(() => { const s = document.getElementById("refresh"); s.value = "1000"; s.dispatchEvent(new Event("change")); })()`)

	graph := `document.querySelector('section[data-service="web"] svg.chart.big')`
	points := func() int { return browsertest.Eval[int](tab, `Number(`+graph+`?.dataset.points ?? -1)`) }
	history := func() History {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/api/v1/history")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h History
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	// A point per sample: wait for three, then for each of the next two
	// samples the node takes, the page shows one more point, and as many
	// as the API has.
	tab.WaitFor(60*time.Second, graph+`?.dataset.points >= 3`)
	for range 2 {
		n := len(history().Times)
		tab.WaitFor(30*time.Second, fmt.Sprintf(`%s?.dataset.points > %d`, graph, n))
		got, api := points(), len(history().Times)
		if got < n+1 || got > api {
			t.Errorf("graph points: got %d, want one more than the %d before and at most the API's %d", got, n, api)
		}
	}
	vertices := browsertest.Eval[int](tab, graph+`.querySelector("polyline.rate").getAttribute("points").trim().split(/\s+/).length`)
	if p := points(); vertices != p {
		t.Errorf("rate line: got %d vertices, want one per point (%d)", vertices, p)
	}
	if last := browsertest.Eval[float64](tab, `Number(`+graph+`.dataset.last)`); last < 80 || last > 120 {
		t.Errorf("web's rate on the graph: got %v, want about 100 conn/s", last)
	}
	spark := `document.querySelector('tr[data-service="web"][data-backend="127.0.0.1:81"] svg.chart.small')`
	if last := browsertest.Eval[float64](tab, `Number(`+spark+`?.dataset.last ?? -1)`); last < 40 || last > 60 {
		t.Errorf("127.0.0.1:81's rate on its graph: got %v, want about 50 conn/s", last)
	}

	// The HA timeline: master all along, then a release the test asks for.
	row := `document.querySelector('#ha-timeline [data-group="web"]')`
	tab.WaitFor(30*time.Second, row+`?.querySelector("rect.seg.master") && !`+row+`.querySelector("rect.seg.backup")`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/ha/web/release", nil)
	req.Header.Set("Authorization", "Bearer "+dashToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("release: got %d, want 200", resp.StatusCode)
	}
	tab.WaitFor(30*time.Second, row+`?.querySelector("ul.changes li")?.textContent.startsWith("master → backup at ")`)
	g.smu.Lock()
	since := g.st.HA[0].Since
	g.smu.Unlock()
	if got, want := browsertest.Eval[string](tab, row+`.querySelector("ul.changes li").dataset.time`), since.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
		t.Errorf("transition time on the page: got %s, want %s, when the group changed", got, want)
	}
	tab.WaitFor(30*time.Second, row+`.querySelector("rect.seg.backup") !== null && `+row+`.querySelector("line.mark") !== null`)
	if out := os.Getenv("FULCRUM_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, tab.Screenshot(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, pr := range tab.Problems() {
		t.Errorf("page problem: %s", pr)
	}
}
