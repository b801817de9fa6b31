package cli

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

// testStatus is a node's status at now.
func testStatus(now time.Time) *admin.Status {
	started := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	return &admin.Status{
		Node: "lb1", Version: "v0.1.0", ConfigHash: "3f2a9c1e77b0d1c2aa", Started: started, Time: now,
		Reloads: admin.Reloads{OK: 2, Failed: 1, LastError: "fulcrum.yaml:7:16: services[0].backends[0].address: want ip:port\nmore"},
		HA: []admin.HAGroup{
			{Name: "web", Interface: "eth0", VRID: 51, VIPs: []string{"192.168.0.105/24"}, State: "master", Since: started.Add(time.Hour),
				Priority: 100, ConfiguredPriority: 150, AdvertsSent: 36000, AdvertsReceived: 2, VIPsHeld: 1,
				Track: []admin.TrackItem{{Kind: "service", Name: "web", OK: true}, {Kind: "interface", Name: "eth1", Weight: 50, Detail: "link down"}},
				// Its only peer stopped saying hello 42s ago.
				Peers: []admin.HAPeer{{Address: "192.168.0.2", Priority: 100, Node: "lb2", State: "backup", Hellos: 900, LastHello: now.Add(-42 * time.Second), Gone: true}}},
			{Name: "db", Interface: "eth0", VRID: 52, VIPs: []string{"192.168.0.106/24"}, State: "backup", Since: started,
				Priority: 100, ConfiguredPriority: 100, Master: "192.168.0.2", MasterPriority: 150, AdvertsReceived: 54000, VIPsHeld: 1,
				ReleasedAt: now.Add(-5 * time.Minute),
				Peers: []admin.HAPeer{
					{Address: "192.168.0.2", Priority: 150, LastHeard: now.Add(-300 * time.Millisecond), Adverts: 54000, ConfigHash: "9876fedc00112233"},
					{Address: "192.168.0.3", Priority: 0, LastHeard: now.Add(-time.Hour), Adverts: 12},
				}},
			{Name: "api", Interface: "eth0", VRID: 53, VIPs: []string{"192.168.0.107/24"}, State: "backup", Since: started,
				Priority: 200, ConfiguredPriority: 200, Master: "192.168.0.3", MasterPriority: 150, AdvertsReceived: 54000,
				// A returning director leaving the master in place until
				// the flow sync brought it lb3's flows.
				PreemptHeld: "waiting for the flow table of lb3", PreemptHoldUntil: now.Add(7300 * time.Millisecond),
				// lb3 was master an hour ago and says hello since.
				Peers: []admin.HAPeer{{Address: "192.168.0.3", Priority: 150, LastHeard: now.Add(-time.Hour), LastHello: now.Add(-400 * time.Millisecond), ConfigHash: "3f2a9c1e77b0d1c2", Node: "lb3", State: "backup", Hellos: 12}, {Address: "192.168.0.4", Priority: 120, LastHeard: now.Add(-2 * time.Second)}}},
			{Name: "mail", Interface: "eth0", VRID: 54, VIPs: []string{"192.168.0.108/24"}, State: "backup", Since: now.Add(-500 * time.Millisecond),
				Priority: 100, ConfiguredPriority: 100, ListenUntil: now.Add(1500 * time.Millisecond)},
		},
		Director: &admin.Director{
			Interfaces:  []admin.DirectorInterface{{Name: "eth0", Mode: "native"}, {Name: "eth1", Mode: "generic"}},
			FlowEntries: 17, Services: 1, Slots: 2,
			Counters: map[string]uint64{"tx": 90000, "passed_no_service": 40, "dropped_malformed": 0, "redirect": 3},
			Sync: &admin.DirectorSync{Listen: "10.0.0.1:8848", Sent: 1200, Received: 800, Installed: 790, Queued: 5,
				Feed: "restarting", FeedFailures: 3, FeedError: "new flows: xdp: new flows: epoll wait: bad file descriptor",
				FeedLastFailure: now.Add(-time.Second), FeedRetryAt: now.Add(3 * time.Second),
				Dropped: map[string]uint64{"unknown_backend": 10, "rate": 3},
				Peers: []admin.DirectorSyncPeer{
					{Address: "10.0.0.2:8848", Node: "lb2", LastHeard: now.Add(-300 * time.Millisecond), Joined: now.Add(-time.Hour)},
					{Address: "10.0.0.3:8848", Node: "lb3", LastHeard: now.Add(-2 * time.Second)},
					{Address: "10.0.0.4:8848"},
				}},
		},
		Alerts: admin.Alerts{Hooks: []admin.AlertHook{
			{Name: "lvs.alert", Sent: 4},
			{Name: "chat", Sent: 1, Failed: 2, Dropped: 3, LastError: "webhook https://chat.example: status 500"},
		}},
		Services: []admin.Service{
			{
				Name: "web", Protocol: "tcp", Listen: "192.168.0.105:80", Scheduler: "wlc",
				Persistence: &admin.Persistence{TimeoutSeconds: 360, Entries: 12},
				Counters:    admin.Counters{Accepted: 1234, Active: 3, NoBackend: 1, ConnectFailures: 2},
				Backends: []admin.Backend{
					{Address: "192.168.0.101:80", Role: admin.RolePrimary, AdminState: "ready", Weight: 1, Healthy: true, Available: true, Active: 1, Total: 400, BytesIn: 2048, BytesOut: 5 << 20,
						Health: &admin.Health{Check: "http", State: "up", Since: started.Add(time.Hour), LastOK: true, Flaps: 2}},
					{Address: "192.168.0.102:80", Role: admin.RolePrimary, AdminState: "maint", Weight: 3, MaxConnections: 100, Healthy: false, Active: 2, Total: 830, ConnectFailures: 2,
						Health: &admin.Health{Check: "http", State: "down", Since: started.Add(90 * time.Minute), LastReason: "status 503, want 200-399", Flaps: 1}},
					{Address: "192.168.0.104:80", Role: admin.RolePrimary, AdminState: "ready", Runtime: "added", Weight: 1, Healthy: true, Available: true, SlowStart: true},
					{Address: "192.168.0.105:80", Role: admin.RolePrimary, AdminState: "drain", Runtime: "weight", Weight: 2, Healthy: true, Active: 4, Total: 9,
						AdminSetOn: "lb1", AdminScope: "node"},
					{Address: "192.168.0.103:80", Role: admin.RoleBackup, AdminState: "ready", Weight: 0, Healthy: true},
					{Address: "127.0.0.1:8080", Role: admin.RoleFallback, AdminState: "ready", Weight: 1, Healthy: false},
				},
				Removed: []string{"192.168.0.109:80"},
			},
			{
				Name: "dns", Protocol: "udp", Listen: "[2001:db8::5]:53", Scheduler: "rr",
				Counters: admin.Counters{Accepted: 70000, Active: 1024, Evicted: 3000, EvictedPerClient: 65000},
				Backends: []admin.Backend{{Address: "[2001:db8::10]:53", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 7}},
			},
			{
				Name: "shop", Protocol: "tcp", Listen: "192.168.0.200:0", Scheduler: "maglev", Forwarding: "direct",
				Director: &admin.DirectorCounters{Packets: 90000, Bytes: 12 << 20, NewFlows: 300},
				Backends: []admin.Backend{
					{Address: "192.168.0.1:0", Role: admin.RolePrimary, AdminState: "ready", Weight: 1, Healthy: true, Available: true,
						Director: &admin.DirectorCounters{Packets: 60000, Bytes: 8 << 20, NewFlows: 200, ActiveFlows: 12}},
					{Address: "192.168.0.2:0", Role: admin.RolePrimary, AdminState: "ready", Weight: 1, Healthy: true, Available: true,
						Director: &admin.DirectorCounters{Packets: 30000, Bytes: 4 << 20, NewFlows: 100, ActiveFlows: 5}},
					{Address: "192.168.0.3:0", Role: admin.RolePrimary, AdminState: "ready", Weight: 1, Healthy: true, Available: true,
						Director: &admin.DirectorCounters{NotForwarded: "next hop not resolved yet: no neighbour entry for 192.168.0.3 on eth0"}},
				},
			},
			{
				Name: "api", Protocol: "http", Listen: "192.168.0.105:8080", Scheduler: "rr",
				Backends: []admin.Backend{
					{Address: "192.168.0.111:8080", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 3, Requests: 1200, Errors: 4},
				},
			},
		},
	}
}

func TestRenderStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 11, 30, 5, 0, time.UTC)
	st := testStatus(now)
	// Two seconds earlier: 20 more connections to .101, none to .102,
	// .104 not there yet; 3 more datagram sessions; 100 more requests.
	prev := testStatus(now.Add(-2 * time.Second))
	web := prev.Services[0].Backends
	web[0].Total, web[1].Total = 380, 830
	prev.Services[0].Backends = append(web[:2:2], web[3:]...)
	prev.Services[1].Backends[0].Total = 4
	prev.Services[3].Backends[0].Requests = 1100
	var buf bytes.Buffer
	renderStatus(&buf, st, prev, now)
	golden(t, "status.golden", buf.Bytes())
}

func TestRenderStatusHTTP(t *testing.T) {
	t.Parallel()
	started := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	st := &admin.Status{
		Node: "lb1", Version: "v0.1.0", ConfigHash: "3f2a9c1e77b0d1c2aa", Started: started,
		Services: []admin.Service{
			{
				Name: "web", Protocol: "http", Listen: "192.168.0.105:443", Scheduler: "wlc",
				Counters: admin.Counters{Accepted: 310, Active: 12},
				HTTP: &admin.HTTPCounters{Requests: 12000, BadRequests: 3, Status2xx: 11800, Status3xx: 150, Status4xx: 40, Status5xx: 7,
					Aborted: 1, UpstreamConnects: 64, UpstreamReuses: 11936},
				Backends: []admin.Backend{
					{Address: "192.168.0.101:80", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Active: 2, Total: 40, BytesOut: 3 << 20,
						Requests: 7000, Errors: 2},
					{Address: "127.0.0.1:8080", Role: admin.RoleFallback, Weight: 1, Healthy: true, Available: true},
				},
				Routes: []admin.Route{{
					Name: "web/api", Host: "api.example.com", PathPrefix: "/v1/", Scheduler: "rr",
					Persistence: &admin.Persistence{TimeoutSeconds: 360, Entries: 4},
					Backends: []admin.Backend{
						{Address: "192.168.0.111:8080", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 24,
							Requests: 4990, Errors: 5},
					},
				}},
			},
			{
				Name: "smtp", Protocol: "tcp", Listen: "192.168.0.105:25", Scheduler: "rr",
				Backends: []admin.Backend{{Address: "192.168.0.121:25", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 7}},
			},
		},
	}
	st.AccessLogs = []admin.AccessLog{
		{Path: "/var/log/fulcrum/access.log", Lines: 11990, WriteErrors: 3, LinesLost: 40,
			LastError: "write /var/log/fulcrum/access.log: no space left on device", LastErrorAt: started.Add(50 * time.Minute)},
		{Path: "stderr", Lines: 10},
	}
	st.Time = started.Add(time.Hour)
	// Ten seconds earlier: 100 requests less on each pool's backend.
	prev := &admin.Status{Time: st.Time.Add(-10 * time.Second), Services: []admin.Service{{
		Name: "web", Protocol: "http",
		Backends: []admin.Backend{{Address: "192.168.0.101:80", Requests: 6900}},
		Routes:   []admin.Route{{Name: "web/api", Backends: []admin.Backend{{Address: "192.168.0.111:8080", Requests: 4890}}}},
	}}}
	var buf bytes.Buffer
	renderStatus(&buf, st, prev, st.Time)
	golden(t, "status-http.golden", buf.Bytes())
}

// TestRenderStatusNoRate: a single snapshot has no rates to show.
func TestRenderStatusNoRate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 11, 30, 5, 0, time.UTC)
	var buf bytes.Buffer
	renderStatus(&buf, testStatus(now), nil, now)
	for line := range strings.Lines(buf.String()) {
		if !strings.HasPrefix(line, "  -> ") || strings.HasPrefix(line, "  -> RemoteAddress") {
			continue
		}
		if f := strings.Fields(line); f[9] != "-" {
			t.Errorf("Req/s without an earlier snapshot: got %q, want -, in %q", f[9], line)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {1536, "1.5K"}, {5 << 20, "5.0M"}, {3 << 40, "3.0T"},
	}
	for _, tc := range tests {
		if got := humanBytes(tc.in); got != tc.want {
			t.Errorf("humanBytes(%d): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// steadySource is a node whose one backend takes 50 connections a second;
// its status carries the time it was read, so a rate measured between two
// reads is 50 whoever else reads it (the admin server samples it for its
// history too).
type steadySource struct{ start time.Time }

func (c *steadySource) Status() admin.Status {
	now := time.Now()
	st := *testStatus(now)
	st.Services = []admin.Service{{Name: "web", Protocol: "tcp", Listen: "127.0.0.1:80", Scheduler: "rr",
		Backends: []admin.Backend{{Address: "127.0.0.1:81", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: uint64(now.Sub(c.start) / (20 * time.Millisecond))}}}}
	return st
}

// TestStatusRateFlag runs `fulcrum status --rate` against a real admin
// listener: two snapshots, a rate from their difference.
func TestStatusRateFlag(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := &steadySource{start: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- admin.New(admin.Options{Source: src, Log: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
	}()
	defer func() {
		cancel()
		<-done
	}()
	for _, tc := range []struct {
		args     []string
		measured bool
	}{
		{[]string{"--rate=500ms"}, true},
		{[]string{"--rate", "500ms"}, true}, // as users type it
		{nil, false},
	} {
		var out, stderr bytes.Buffer
		start := time.Now()
		if code := Main(append([]string{"status", "--admin", ln.Addr().String()}, tc.args...), &out, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr.String())
		}
		if el := time.Since(start); tc.measured && el < 500*time.Millisecond {
			t.Errorf("%v: returned after %s, want at least the 500ms of --rate", tc.args, el)
		}
		var cell string
		for line := range strings.Lines(out.String()) {
			if strings.HasPrefix(line, "  -> 127.0.0.1:81 ") {
				cell = strings.Fields(line)[9]
			}
		}
		if !tc.measured {
			if cell != "-" {
				t.Errorf("%v: Req/s %q, want -", tc.args, cell)
			}
			continue
		}
		if r, err := strconv.ParseFloat(cell, 64); err != nil || r < 40 || r > 60 {
			t.Errorf("%v: Req/s %q, want about 50:\n%s", tc.args, cell, out.String())
		}
	}
}

// TestRenderSyncFeed: the flow sync's line says when the kernel's
// new-flow feed is down, or was restarted, and why; nothing when it
// never failed.
func TestRenderSyncFeed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		sync admin.DirectorSync
		want string
	}{
		{"running", admin.DirectorSync{Feed: "running"}, ""},
		{"restarting", admin.DirectorSync{Feed: "restarting", FeedFailures: 1, FeedError: "new flows: closed", FeedLastFailure: now, FeedRetryAt: now.Add(time.Second)},
			"    new-flow feed down after 1 failures, read again in 1s: new flows: closed\n"},
		{"restarted", admin.DirectorSync{Feed: "running", FeedFailures: 2, FeedError: "new flows: closed", FeedLastFailure: now.Add(-time.Minute)},
			"    new-flow feed restarted after 2 failures, the last 1m0s ago: new flows: closed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.sync.Listen = "10.0.0.1:8848"
			var b strings.Builder
			renderSync(&b, &tc.sync, now)
			got := strings.TrimPrefix(b.String(), "  sync: 10.0.0.1:8848  sent 0  received 0  installed 0\n")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
