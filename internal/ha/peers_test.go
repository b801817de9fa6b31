package ha

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// TestPeerWatch: a peer heard and then silent is logged gone once, at
// Warn, saying when no peer is left; back, at Info; and status lists it
// as gone although the hello has forgotten it.
func TestPeerWatch(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "last_seen" || a.Key == "silent" {
				return slog.Attr{}
			}
			return a
		},
	}))
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	lb2, lb3 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	// lb2 says hello; lb3 is a keepalived master heard by its adverts.
	hellos := []hello.Peer{{Node: "lb2", Addr: lb2, State: "backup", Priority: 100, LastSeen: t0}}
	adverts := []vrrp.Peer{{Addr: lb3, Priority: 200, Interval: time.Second, LastHeard: t0}}
	var w peerWatch
	lb2Back := []hello.Peer{{Node: "lb2", Addr: lb2, LastSeen: t0.Add(8 * time.Second)}}
	steps := []struct {
		at      time.Duration
		adverts []vrrp.Peer
		hellos  []hello.Peer
		lost    netip.Addr // this node takes over from it (master_down)
	}{
		{at: 0, adverts: adverts, hellos: hellos},
		{at: time.Second, adverts: adverts, hellos: hellos},     // nothing new
		{at: 4 * time.Second, adverts: adverts, hellos: hellos}, // lb3 silent: it may be a backup now
		{at: 4500 * time.Millisecond, lost: lb3},                // no: we took over from it
		{at: 6 * time.Second, adverts: adverts},                 // the hello forgot lb2
		{at: 7 * time.Second, adverts: adverts},                 // still gone: not logged again
		{at: 8 * time.Second, hellos: lb2Back},
		{at: 9 * time.Second, lost: lb2},
		{at: 9500 * time.Millisecond, hellos: lb2Back}, // its last hello, before it went: not back
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		if s.lost.IsValid() {
			w.lost(now, s.lost, t0, "web", log)
			continue
		}
		live := livePeers(now, s.adverts, s.hellos)
		w.observe(now, live, "web", log)
		if s.at == 7*time.Second {
			got := gonePeers(nil, w.gone(), live)
			if len(got) != 2 || got[0].Address != "192.0.2.2" || !got[0].Gone || got[0].Node != "lb2" || got[0].LastHello != t0 ||
				got[1].Address != "192.0.2.3" || !got[1].Gone {
				t.Errorf("status of the gone peers: %+v, want lb2 (last seen at t0) and lb3 gone", got)
			}
		}
		if s.at == 9500*time.Millisecond {
			if got := gonePeers(nil, w.gone(), live); len(got) != 2 || !got[0].Gone {
				t.Errorf("status after lb2 was lost: %+v, want it gone", got)
			}
		}
	}
	want := strings.Join([]string{
		`level=INFO msg="ha peer heard" group=web peer=192.0.2.2 node=lb2`,
		`level=INFO msg="ha peer heard" group=web peer=192.0.2.3 node=""`,
		`level=WARN msg="ha peer gone" group=web peer=192.0.2.3 node="" peers_left=1`,
		`level=WARN msg="ha peer gone: no other peer heard, no redundancy" group=web peer=192.0.2.2 node=lb2`,
		`level=INFO msg="ha peer back" group=web peer=192.0.2.2 node=lb2`,
		`level=WARN msg="ha peer gone: no other peer heard, no redundancy" group=web peer=192.0.2.2 node=lb2`,
	}, "\n") + "\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestHelloPeers: a peer heard by both is one peer; its priority is the
// newer source's, and LastHeard stays its last advert's time.
func TestHelloPeers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	peers := []admin.HAPeer{{Address: "192.0.2.2", Priority: 150, LastHeard: t0, Adverts: 10}}
	got := helloPeers(peers, []hello.Peer{
		{Node: "lb2", Addr: netip.MustParseAddr("192.0.2.2"), State: "backup", Priority: 100, LastSeen: t0.Add(time.Hour), Hellos: 3600},
		{Node: "lb3", Addr: netip.MustParseAddr("192.0.2.3"), State: "backup", Priority: 90, LastSeen: t0.Add(time.Hour), Hellos: 5},
	})
	want := []admin.HAPeer{
		{Address: "192.0.2.2", Priority: 100, LastHeard: t0, Adverts: 10, Node: "lb2", State: "backup", Hellos: 3600, LastHello: t0.Add(time.Hour)},
		{Address: "192.0.2.3", Priority: 90, Node: "lb3", State: "backup", Hellos: 5, LastHello: t0.Add(time.Hour)},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
