package admin

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// metricsStatus has something of everything the collector exports.
func metricsStatus() Status {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	bounds := []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond}
	return Status{
		Node: "lb1", Version: "v1.2.3", ConfigHash: "3f2a9c1e", Started: t0, Time: t0.Add(time.Hour),
		Reloads: Reloads{OK: 2, Failed: 1, LastError: "bad port"},
		Services: []Service{
			{
				Name: "web", Protocol: "http", Listen: "192.0.2.100:80", Scheduler: "wlc",
				Counters: Counters{Accepted: 40, Active: 2, NoBackend: 1, ConnectFailures: 3, IdleTimeouts: 4},
				HTTP:     &HTTPCounters{Requests: 100, Poller: "failed", PollerError: "poller: epoll_wait: bad file descriptor"},
				Backends: []Backend{
					{
						Address: "10.0.0.1:80", Role: RolePrimary, Weight: 2, ConfiguredWeight: 4, Healthy: true, Available: true,
						Active: 2, Total: 30, ConnectFailures: 1, BytesIn: 1000, BytesOut: 50000, SlowStart: true,
						Requests: 100, Errors: 7,
						Latency: &Histogram{Bounds: bounds, Counts: []uint64{50, 30, 15, 5}, Count: 100, Sum: 3 * time.Second},
						Health: &Health{
							Check: "http", State: "up", Since: t0, LastCheck: t0.Add(59 * time.Minute), LastDurationMS: 1.5, LastOK: true,
							Checks: 60, Failures: 2, Flaps: 2, Shared: 1,
							Durations: &Histogram{Bounds: bounds, Counts: []uint64{10, 50, 0, 0}, Count: 60, Sum: 300 * time.Millisecond},
						},
					},
					{Address: "10.0.0.2:80", Role: RolePrimary, Weight: 1, ConfiguredWeight: 1, Healthy: false,
						Health: &Health{Check: "http", State: "down", Since: t0, Checks: 3, Failures: 3, Flaps: 1}},
					// A fallback at a backend's address is exported once.
					{Address: "10.0.0.2:80", Role: RoleFallback, Weight: 1, ConfiguredWeight: 1, Healthy: true},
				},
				// A route pool's backends are exported as service="web/api";
				// a drained one has effective weight 0.
				Routes: []Route{{Name: "api", PathPrefix: "/api/", Scheduler: "rr", Backends: []Backend{
					{Address: "10.0.0.5:80", Role: RolePrimary, Weight: 3, ConfiguredWeight: 3, Healthy: true, AdminState: "drain",
						Requests: 4, Latency: &Histogram{Bounds: bounds, Counts: []uint64{4, 0, 0, 0}, Count: 4, Sum: 2 * time.Millisecond}},
				}}},
			},
			{
				Name: "db", Protocol: "tcp", Listen: "192.0.2.100:5432", Scheduler: "lc",
				Persistence: &Persistence{TimeoutSeconds: 360, Entries: 5},
				Counters:    Counters{Accepted: 9, ProxyHeaderError: 1},
				Backends: []Backend{{
					Address: "10.0.0.3:5432", Role: RolePrimary, Weight: 1, ConfiguredWeight: 1, Healthy: true, Available: true, Total: 9,
					Lifetimes: &Histogram{Bounds: bounds, Counts: []uint64{0, 0, 8, 1}, Count: 9, Sum: 2 * time.Second},
				}},
			},
			{
				Name: "dns", Protocol: "udp", Listen: "192.0.2.100:53", Scheduler: "rr",
				Counters: Counters{Accepted: 3, Dropped: 2, Evicted: 5, EvictedPerClient: 4, SendErrors: 1},
				Backends: []Backend{{Address: "10.0.0.4:53", Role: RoleBackup, Weight: 1, ConfiguredWeight: 1, Healthy: true}},
			},
		},
		Alerts: Alerts{QueueDropped: 1, Hooks: []AlertHook{{Name: "pager", Sent: 5, Failed: 1, Dropped: 2, Overflow: 3}}},
		AccessLogs: []AccessLog{{Path: "/var/log/fulcrum/access.log", Lines: 120, WriteErrors: 2, LinesLost: 17,
			LastError: "write /var/log/fulcrum/access.log: no space left on device", LastErrorAt: t0.Add(time.Minute)}},
		HA: []HAGroup{{
			Name: "web", Interface: "eth0", VRID: 51, VIPs: []string{"192.0.2.100/24", "192.0.2.101/24"},
			State: "backup", Priority: 100, ConfiguredPriority: 150, Master: "192.0.2.2", MasterPriority: 120,
			Transitions: 3, AdvertsSent: 10, AdvertsReceived: 500, SendErrors: 1,
			Dropped:    map[string]uint64{"vrid": 4, "auth": 1},
			HellosSent: 11, HelloDropped: map[string]uint64{"malformed": 7, "unknown_group": 2},
			Track: []TrackItem{{Kind: "service", Name: "web", OK: false, Weight: 50}},
			Peers: []HAPeer{{Address: "192.0.2.2", Priority: 120, IntervalMS: 1000, LastHeard: t0.Add(time.Hour), Adverts: 500, ConfigHash: "ffffeeeeddddcccc"},
				{Address: "192.0.2.3", Priority: 100, LastHeard: t0.Add(time.Hour), ConfigHash: "3f2a9c1e", Node: "lb3", State: "backup", Hellos: 9},
				{Address: "192.0.2.4", Node: "lb4", LastHello: t0, Gone: true}},
			ReleasedAt: t0, PreemptHeld: "waiting for the flow table of lb2",
		}},
	}
}

// serveTest runs a server for src on loopback until the test ends and returns
// its address.
func serveTest(t *testing.T, src Source) string {
	t.Helper()
	return serveWith(t, Options{Source: src})
}

// serveWith serves an API with opt on loopback until the test ends.
func serveWith(t *testing.T, opt Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(opt).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestMetricsExposition scrapes a real listener and compares fulcrum's
// part of the exposition with testdata/metrics.golden (-update rewrites
// it).
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	addr := serveTest(t, fakeSource{metricsStatus()})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	var ours bytes.Buffer
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "fulcrum_") || strings.HasPrefix(line, "# HELP fulcrum_") || strings.HasPrefix(line, "# TYPE fulcrum_") {
			ours.WriteString(line)
		}
	}
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, ours.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), ours.String()); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(body), "go_goroutines ") || !strings.Contains(string(body), "process_start_time_seconds ") {
		t.Errorf("the Go runtime's and the process's metrics are missing")
	}
}

// TestMetricsLint gathers every metric, which fails on a repeated label
// set or an inconsistent label name, and runs Prometheus' own linter over
// them.
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	if _, err := newRegistry(fakeSource{metricsStatus()}).Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	problems, err := testutil.CollectAndLint(newCollector(fakeSource{metricsStatus()}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestMetricsDocumented checks that docs/metrics.md names every metric
// the collector can export, and nothing it does not.
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(fulcrum_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	exported := map[string]bool{}
	nameRe := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	descs := append(newCollector(fakeSource{}).descs, newRefusalCollector(&refusals{}).desc)
	for _, d := range descs {
		name := nameRe.FindStringSubmatch(d.String())[1]
		exported[name] = true
		if !documented[name] {
			t.Errorf("%s is not in docs/metrics.md", name)
		}
	}
	for name := range documented {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !exported[name] && !exported[base] {
			t.Errorf("docs/metrics.md names %s, which is not exported", name)
		}
	}
}

// TestMetricsEmpty collects from a daemon that has no config yet: the
// node's info, reload counters and the alert queue's drops, nothing else, and no error.
func TestMetricsEmpty(t *testing.T) {
	t.Parallel()
	if n := testutil.CollectAndCount(newCollector(fakeSource{Status{Version: "v1"}})); n != 5 {
		t.Errorf("got %d metrics from an empty status, want 5 (info, reloads ok and failed, last reload, alert queue drops)", n)
	}
}

// BenchmarkScrape renders /metrics for 20 HTTP services of 10 backends
// each, with health checks: the cost of one scrape, paid by the scraper's
// request goroutine, never by the data path.
func BenchmarkScrape(b *testing.B) {
	one := metricsStatus()
	st := one
	st.Services = nil
	for i := range 20 {
		s := one.Services[0]
		s.Name = fmt.Sprintf("svc%d", i)
		s.Backends = nil
		for j := range 10 {
			be := one.Services[0].Backends[0]
			be.Address = fmt.Sprintf("10.0.%d.%d:80", i, j)
			s.Backends = append(s.Backends, be)
		}
		st.Services = append(st.Services, s)
	}
	h := metricsHandler(fakeSource{st}, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
