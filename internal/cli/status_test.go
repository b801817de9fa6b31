package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
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

func TestRenderStatus(t *testing.T) {
	t.Parallel()
	started := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	st := &admin.Status{
		Node: "lb1", Version: "v0.1.0", ConfigHash: "3f2a9c1e77b0d1c2aa", Started: started,
		Reloads: admin.Reloads{OK: 2, Failed: 1, LastError: "fulcrum.yaml:7:16: services[0].backends[0].address: want ip:port\nmore"},
		HA: []admin.HAGroup{
			{Name: "web", Interface: "eth0", VRID: 51, VIPs: []string{"192.168.0.105/24"}, State: "master", Since: started.Add(time.Hour),
				Priority: 100, ConfiguredPriority: 150, AdvertsSent: 36000, AdvertsReceived: 2,
				Track: []admin.TrackItem{{Kind: "service", Name: "web", OK: true}, {Kind: "interface", Name: "eth1", Weight: 50, Detail: "link down"}}},
			{Name: "db", Interface: "eth0", VRID: 52, VIPs: []string{"192.168.0.106/24"}, State: "backup", Since: started,
				Priority: 100, ConfiguredPriority: 100, Master: "192.168.0.2", MasterPriority: 150, AdvertsReceived: 54000},
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
					{Address: "192.168.0.101:80", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Active: 1, Total: 400, BytesIn: 2048, BytesOut: 5 << 20,
						Health: &admin.Health{Check: "http", State: "up", Since: started.Add(time.Hour), LastOK: true, Flaps: 2}},
					{Address: "192.168.0.102:80", Role: admin.RolePrimary, Weight: 3, MaxConnections: 100, Healthy: false, Active: 2, Total: 830, ConnectFailures: 2,
						Health: &admin.Health{Check: "http", State: "down", Since: started.Add(90 * time.Minute), LastReason: "status 503, want 200-399", Flaps: 1}},
					{Address: "192.168.0.104:80", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, SlowStart: true},
					{Address: "192.168.0.103:80", Role: admin.RoleBackup, Weight: 0, Healthy: true},
					{Address: "127.0.0.1:8080", Role: admin.RoleFallback, Weight: 1, Healthy: false},
				},
			},
			{
				Name: "dns", Protocol: "udp", Listen: "[2001:db8::5]:53", Scheduler: "rr",
				Backends: []admin.Backend{{Address: "[2001:db8::10]:53", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 7}},
			},
		},
	}
	var buf bytes.Buffer
	renderStatus(&buf, st, started.Add(90*time.Minute+5*time.Second))
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
						Requests: &admin.RequestCounters{Requests: 7000, Errors: 2, MeanMS: 1.5}},
					{Address: "127.0.0.1:8080", Role: admin.RoleFallback, Weight: 1, Healthy: true, Available: true,
						Requests: &admin.RequestCounters{}},
				},
				Routes: []admin.Route{{
					Name: "web/api", Host: "api.example.com", PathPrefix: "/v1/", Scheduler: "rr",
					Persistence: &admin.Persistence{TimeoutSeconds: 360, Entries: 4},
					Backends: []admin.Backend{
						{Address: "192.168.0.111:8080", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 24,
							Requests: &admin.RequestCounters{Requests: 4990, Errors: 5, MeanMS: 3.25}},
					},
				}},
			},
			{
				Name: "smtp", Protocol: "tcp", Listen: "192.168.0.105:25", Scheduler: "rr",
				Backends: []admin.Backend{{Address: "192.168.0.121:25", Role: admin.RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 7}},
			},
		},
	}
	var buf bytes.Buffer
	renderStatus(&buf, st, started.Add(time.Hour))
	golden(t, "status-http.golden", buf.Bytes())
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
