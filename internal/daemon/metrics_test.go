package daemon

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// exposition is one parsed scrape of /metrics.
type exposition map[string]*dto.MetricFamily

func scrape(t *testing.T, addr string) exposition {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sum adds the values of name's series that carry every label in
// pairs ("service", "web", ...): a counter's or gauge's value, a
// histogram's count.
func (e exposition) sum(name string, pairs ...string) float64 {
	mf := e[name]
	if mf == nil {
		return 0
	}
	var total float64
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, pairs) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// has reports whether name has a series with the labels in pairs.
func (e exposition) has(name string, pairs ...string) bool {
	mf := e[name]
	if mf == nil {
		return false
	}
	for _, m := range mf.GetMetric() {
		if hasLabels(m, pairs) {
			return true
		}
	}
	return false
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetricsTCPTraffic scrapes a running daemon's admin listener while
// real connections go through a TCP service, and while one backend's
// health check fails.
func TestMetricsTCPTraffic(t *testing.T) {
	t.Parallel()
	b1 := echoBackend(t, "b1")
	ln2 := echoListener(t, "b2")
	b2 := ln2.Addr().String()
	web, adminAddr := freeTCP(t), freeTCP(t)
	startDaemon(t, fmt.Sprintf(`node: { name: lb1 }
admin: { listen: %s }
services:
  - name: web
    listen: %s
    scheduler: rr
    health: { type: tcp, interval: 50ms, timeout: 500ms, fall: 1, rise: 1 }
    backends: [ { address: %s }, { address: %s, weight: 3 } ]
`, adminAddr, web, b1, b2))

	m := scrape(t, adminAddr)
	if !m.has("fulcrum_info", "node", "lb1") || m.sum("fulcrum_backend_up") != 2 {
		t.Fatalf("before traffic: info %v, backends up %v; want lb1 and 2", m.has("fulcrum_info", "node", "lb1"), m.sum("fulcrum_backend_up"))
	}
	if got := m.sum("fulcrum_service_connections_total", "service", "web"); got != 0 {
		t.Errorf("connections before traffic: got %v, want 0", got)
	}

	const n = 10
	for range n {
		ask(t, web)
	}
	// Bytes and lifetimes are counted when the proxy has closed both
	// sides, a moment after the client saw its answer.
	waitUntil(t, "every connection counted as closed", func() bool {
		return scrape(t, adminAddr).sum("fulcrum_backend_connection_duration_seconds") == n
	})
	m = scrape(t, adminAddr)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"fulcrum_service_connections_total", n},
		{"fulcrum_service_connections_active", 0},
		{"fulcrum_backend_connections_total", n},
		{"fulcrum_backend_connections_active", 0},
		{"fulcrum_backend_in_bytes_total", float64(n * len("hi\n"))},
		{"fulcrum_backend_out_bytes_total", float64(n * len("b1:hi\n"))},
		{"fulcrum_backend_connect_failures_total", 0},
	} {
		if got := m.sum(c.name, "service", "web"); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	// rr alternates: each backend took half.
	for _, b := range []string{b1, b2} {
		if got := m.sum("fulcrum_backend_connections_total", "backend", b); got != n/2 {
			t.Errorf("connections to %s: got %v, want %d", b, got, n/2)
		}
	}
	if m.has("fulcrum_backend_requests_total") {
		t.Errorf("a TCP service exports request counters")
	}
	if got := m.sum("fulcrum_backend_weight", "backend", b2); got != 3 {
		t.Errorf("weight of %s: got %v, want 3", b2, got)
	}
	if m.sum("fulcrum_health_checks_total", "backend", b2) == 0 || m.sum("fulcrum_health_check_duration_seconds", "backend", b2) == 0 {
		t.Errorf("no checks of %s counted", b2)
	}

	// b2 stops listening: its check fails and it goes down.
	ln2.Close()
	waitUntil(t, b2+" down", func() bool {
		return scrape(t, adminAddr).sum("fulcrum_backend_up", "backend", b2) == 0
	})
	m = scrape(t, adminAddr)
	if got := m.sum("fulcrum_health_check_failures_total", "backend", b2); got < 1 {
		t.Errorf("check failures of %s: got %v, want at least 1", b2, got)
	}
	if got := m.sum("fulcrum_health_transitions_total", "backend", b2); got != 1 {
		t.Errorf("transitions of %s: got %v, want 1", b2, got)
	}
	for _, name := range []string{"fulcrum_backend_effective_weight", "fulcrum_backend_available"} {
		if got := m.sum(name, "backend", b2); got != 0 {
			t.Errorf("%s of the down backend: got %v, want 0", name, got)
		}
	}
	if got := m.sum("fulcrum_backend_weight", "backend", b2); got != 3 {
		t.Errorf("configured weight of the down backend: got %v, want 3 (kept)", got)
	}
	if m.sum("fulcrum_backend_up", "backend", b1) != 1 || m.sum("fulcrum_backend_effective_weight", "backend", b1) != 1 {
		t.Errorf("%s not up with weight 1", b1)
	}
	if !m.has("fulcrum_health_last_check_timestamp_seconds", "backend", b2) {
		t.Errorf("no last check time for %s", b2)
	}
}

// TestMetricsHA scrapes two nodes of an HA group on the in-memory link:
// states, priorities, peers heard, VIPs held, drops, and a hand-over.
func TestMetricsHA(t *testing.T) {
	t.Parallel()
	l, h := &link{}, &holder{held: map[string]bool{}}
	yaml := func(adminAddr string) string {
		return fmt.Sprintf(`node: { name: NODE }
admin: { listen: %s }
services: [ { name: web, listen: %s, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  groups:
    - { name: web, interface: eth0, vrid: 51, vips: [192.0.2.100/24], priority: { lb1: 150, lb2: 100 }, advert_interval: 100ms, master_down_adverts: 3 }
`, adminAddr, freeTCP(t))
	}
	a1, a2 := freeTCP(t), freeTCP(t)
	lb1 := startHANode(t, l, h, "lb1", "192.0.2.1", yaml(a1))
	startHANode(t, l, h, "lb2", "192.0.2.2", yaml(a2))
	waitUntil(t, "lb1 master holding the VIP, lb2 backup hearing it", func() bool {
		m1, m2 := scrape(t, a1), scrape(t, a2)
		return m1.sum("fulcrum_ha_state", "state", "master") == 1 && m1.sum("fulcrum_ha_vips_held") == 1 &&
			m2.sum("fulcrum_ha_state", "state", "backup") == 1 && m2.sum("fulcrum_ha_vips_held") == 0 &&
			m2.has("fulcrum_ha_peer_priority", "peer", "192.0.2.1")
	})
	m1, m2 := scrape(t, a1), scrape(t, a2)
	for _, c := range []struct {
		m     exposition
		node  string
		name  string
		pairs []string
		want  float64
	}{
		{m1, "lb1", "fulcrum_ha_state", nil, 1}, // one state at a time
		{m1, "lb1", "fulcrum_ha_priority", nil, 150},
		{m1, "lb1", "fulcrum_ha_configured_priority", nil, 150},
		{m1, "lb1", "fulcrum_ha_master_priority", nil, 150},
		{m1, "lb1", "fulcrum_ha_vips", nil, 1},
		{m2, "lb2", "fulcrum_ha_state", []string{"state", "backup"}, 1},
		{m2, "lb2", "fulcrum_ha_state", nil, 1},
		{m2, "lb2", "fulcrum_ha_vips_held", nil, 0},
		{m2, "lb2", "fulcrum_ha_master_priority", nil, 150},
		{m2, "lb2", "fulcrum_ha_peer_priority", []string{"peer", "192.0.2.1"}, 150},
	} {
		if got := c.m.sum(c.name, append([]string{"group", "web"}, c.pairs...)...); got != c.want {
			t.Errorf("%s: %s%v: got %v, want %v", c.node, c.name, c.pairs, got, c.want)
		}
	}
	if m1.sum("fulcrum_ha_adverts_sent_total") == 0 || m2.sum("fulcrum_ha_adverts_received_total") == 0 ||
		m2.sum("fulcrum_ha_peer_adverts_received_total", "peer", "192.0.2.1") == 0 {
		t.Errorf("adverts: lb1 sent %v, lb2 received %v (%v from lb1); want them counted",
			m1.sum("fulcrum_ha_adverts_sent_total"), m2.sum("fulcrum_ha_adverts_received_total"),
			m2.sum("fulcrum_ha_peer_adverts_received_total", "peer", "192.0.2.1"))
	}

	// Another virtual router on the link: both nodes drop its adverts.
	stranger := l.listen(netip.MustParseAddr("192.0.2.9"))
	defer stranger.Close()
	stranger.Send(vrrp.Advert{VRID: 52, Priority: 200, MaxAdvertInterval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.200")}})
	waitUntil(t, "the stranger's advert dropped by lb2", func() bool {
		return scrape(t, a2).sum("fulcrum_ha_adverts_dropped_total", "group", "web", "reason", "vrid") == 1
	})

	// A release hands the VIP over: one more transition on lb1, lb2
	// master holding it.
	before := m1.sum("fulcrum_ha_transitions_total", "group", "web")
	if err := lb1.ReleaseGroup(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "lb2 master holding the VIP, lb1 holding none", func() bool {
		m1, m2 := scrape(t, a1), scrape(t, a2)
		return m2.sum("fulcrum_ha_state", "state", "master") == 1 && m2.sum("fulcrum_ha_vips_held") == 1 &&
			m1.sum("fulcrum_ha_vips_held") == 0
	})
	m1 = scrape(t, a1)
	if got := m1.sum("fulcrum_ha_transitions_total", "group", "web"); got != before+1 {
		t.Errorf("lb1 transitions after release: got %v, want %v", got, before+1)
	}
	if got := m1.sum("fulcrum_ha_state", "state", "backup"); got != 1 {
		t.Errorf("lb1 after release: backup = %v, want 1", got)
	}
	if got := m1.sum("fulcrum_ha_peer_priority", "peer", "192.0.2.2"); got != 100 {
		t.Errorf("lb1 hears lb2 at priority %v, want 100", got)
	}
}
