package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// link is an in-memory broadcast segment between the daemons' VRRP
// conns: adverts cross it as Advert values.
type link struct {
	mu    sync.Mutex
	conns []*linkConn
}

type linkConn struct {
	l      *link
	src    netip.Addr
	in     chan vrrp.Packet
	closed bool
	hash   string // as an authenticated conn carries it; guarded by l.mu
}

var _ vrrp.ConfigHasher = (*linkConn)(nil)

func (c *linkConn) SetConfigHash(h []byte) {
	c.l.mu.Lock()
	c.hash = hex.EncodeToString(h[:vrrp.ConfigHashLen])
	c.l.mu.Unlock()
}

func (l *link) listen(src netip.Addr) *linkConn {
	c := &linkConn{l: l, src: src, in: make(chan vrrp.Packet, 256)}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	return c
}

func (c *linkConn) Send(a vrrp.Advert) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	for _, o := range c.l.conns {
		if o != c && !o.closed {
			select {
			case o.in <- vrrp.Packet{Advert: a, Src: c.src, TTL: 255, ConfigHash: c.hash}:
			default:
			}
		}
	}
	return nil
}

func (c *linkConn) Receive() <-chan vrrp.Packet { return c.in }

func (c *linkConn) Close() error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.in)
	}
	return nil
}

// holder records which node holds the VIPs.
type holder struct {
	mu   sync.Mutex
	held map[string]bool
}

type fakeAnnouncer struct {
	h    *holder
	node string
}

func (a fakeAnnouncer) Acquire(context.Context, []netip.Addr) error {
	a.h.mu.Lock()
	a.h.held[a.node] = true
	a.h.mu.Unlock()
	return nil
}

func (a fakeAnnouncer) Release(context.Context, []netip.Addr) error {
	a.h.mu.Lock()
	a.h.held[a.node] = false
	a.h.mu.Unlock()
	return nil
}

func (a fakeAnnouncer) Announce(context.Context, []netip.Addr) error { return nil }

func (h *holder) holders() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n, ok := range h.held {
		if ok {
			out = append(out, n)
		}
	}
	return out
}

func startHANode(t *testing.T, l *link, h *holder, node, addr, yaml string) *Daemon {
	t.Helper()
	src := netip.MustParseAddr(addr)
	ready := make(chan struct{})
	d := New(Options{
		Load: func() (*config.Config, error) {
			cfg, err := config.Parse("ha.yaml", []byte(strings.ReplaceAll(yaml, "NODE", node)))
			if err != nil {
				return nil, err
			}
			return cfg, Plan(cfg)
		},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func() { close(ready) },
		HA: ha.Deps{
			Listen:      func(vrrp.ConnOptions) (vrrp.Conn, error) { return l.listen(src), nil },
			PrimaryAddr: func(string, vrrp.Family) (netip.Addr, error) { return src, nil },
			Announcer: func(*config.HAGroup, *slog.Logger) (vrrp.Announcer, error) {
				return fakeAnnouncer{h: h, node: node}, nil
			},
			LinkUp: func(string) (bool, error) { return true, nil },
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("%s: Run: %v", node, err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func haState(d *Daemon) string {
	for _, g := range d.Status().HA {
		return g.State
	}
	return ""
}

func TestHAElectionTrackingAndRelease(t *testing.T) {
	t.Parallel()
	// lb1's backend is reachable; the tracked service's health decides.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	ln2nd, err := net.Listen("tcp", "127.0.0.1:0") // lb2's backend, always up
	if err != nil {
		t.Fatal(err)
	}
	defer ln2nd.Close()
	yaml := func(listen, backend string) string {
		return fmt.Sprintf(`node: { name: NODE }
admin: { listen: "off" }
services:
  - name: web
    listen: %s
    health: { type: tcp, interval: 50ms, timeout: 200ms, fall: 1, rise: 1 }
    backends: [ { address: %s } ]
ha:
  groups:
    - name: web
      interface: eth0
      vrid: 51
      vips: [192.0.2.100/24]
      priority: { lb1: 150, lb2: 100 }
      track: { services: [web], weight: 100 }
`, listen, backend)
	}
	l, h := &link{}, &holder{held: map[string]bool{}}
	lb1 := startHANode(t, l, h, "lb1", "192.0.2.1", yaml(freeTCP(t), backend))
	lb2 := startHANode(t, l, h, "lb2", "192.0.2.2", yaml(freeTCP(t), ln2nd.Addr().String()))
	// The state turns master before the addresses are taken: wait for both.
	waitUntil(t, "lb1 master holding the VIP, lb2 backup", func() bool {
		got := h.holders()
		return haState(lb1) == "master" && haState(lb2) == "backup" && len(got) == 1 && got[0] == "lb1"
	})

	// The tracked service loses its only backend: lb1's priority drops
	// below lb2's and lb2 preempts.
	ln.Close()
	waitUntil(t, "lb2 takes over", func() bool { return haState(lb2) == "master" && haState(lb1) == "backup" })
	g := lb1.Status().HA[0]
	if g.Priority != 50 || len(g.Track) != 1 || g.Track[0].OK {
		t.Errorf("lb1 after its service failed: got priority %d track %+v, want 50 and a failed service", g.Priority, g.Track)
	}
	// lb1 keeps the VIP for the hand-over grace (two advert intervals)
	// after yielding, then only lb2 holds it.
	waitUntil(t, "lb2 the only VIP holder", func() bool {
		got := h.holders()
		return len(got) == 1 && got[0] == "lb2"
	})

	// The backend returns: lb1 outranks lb2 again and preempts.
	ln2, err := net.Listen("tcp", backend)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	waitUntil(t, "lb1 back", func() bool { return haState(lb1) == "master" && haState(lb2) == "backup" })

	// A graceful release hands the VIP to lb2, and lb1 does not take it
	// straight back.
	if err := lb1.ReleaseGroup(context.Background(), "web"); err != nil {
		t.Fatalf("ReleaseGroup: %v", err)
	}
	waitUntil(t, "lb2 master after release", func() bool { return haState(lb2) == "master" })
	time.Sleep(300 * time.Millisecond)
	if s := haState(lb1); s != "backup" {
		t.Errorf("lb1 right after release: got %s, want backup (hold)", s)
	}
	if g := lb1.Status().HA[0]; g.ReleasedAt.IsZero() {
		t.Errorf("lb1's status does not show the release: %+v", g)
	}
	if err := lb2.ReleaseGroup(context.Background(), "nope"); err == nil {
		t.Errorf("release of an unknown group: got nil error")
	}
	// Undone: lb1 preempts again, as configured.
	if err := lb2.ReclaimGroup(context.Background(), "web"); err == nil || !strings.Contains(err.Error(), "not released") {
		t.Errorf("reclaim on lb2, never released: %v, want 'not released'", err)
	}
	if err := lb1.ReclaimGroup(context.Background(), "web"); err != nil {
		t.Fatalf("ReclaimGroup: %v", err)
	}
	waitUntil(t, "lb1 master again after reclaim", func() bool { return haState(lb1) == "master" && haState(lb2) == "backup" })
	if g := lb1.Status().HA[0]; !g.ReleasedAt.IsZero() {
		t.Errorf("lb1 still shows a release after reclaim: %v", g.ReleasedAt)
	}
}

func TestHAReleaseThroughAPI(t *testing.T) {
	t.Parallel()
	l, h := &link{}, &holder{held: map[string]bool{}}
	adminAddr := freeTCP(t)
	lb1 := startHANode(t, l, h, "lb1", "192.0.2.1", fmt.Sprintf(`node: { name: NODE }
admin: { listen: %s }
services: [ { name: web, listen: %s, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  groups: [ { name: web, interface: eth0, vrid: 7, vips: [192.0.2.100], priority: { lb1: 150 } } ]
`, adminAddr, freeTCP(t)))
	waitUntil(t, "lb1 master", func() bool { return haState(lb1) == "master" })
	ctx := context.Background()
	if err := admin.ReleaseGroup(ctx, adminAddr, "", "web"); err != nil {
		t.Fatalf("release through the API: %v", err)
	}
	if s := haState(lb1); s != "backup" {
		t.Errorf("after release: got %s, want backup", s)
	}
	if err := admin.ReleaseGroup(ctx, adminAddr, "", "nope"); err == nil || !strings.Contains(err.Error(), "no such ha group") {
		t.Errorf("unknown group: got %v", err)
	}
}

// TestHAPeerConfigHash: the master's adverts carry its config hash, and
// the backup shows it for its peer, following the master's reloads.
func TestHAPeerConfigHash(t *testing.T) {
	t.Parallel()
	yaml := func(listen, scheduler string) string {
		return fmt.Sprintf(`node: { name: NODE }
admin: { listen: "off" }
services: [ { name: web, listen: %s, scheduler: %s, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  groups: [ { name: web, interface: eth0, vrid: 9, vips: [192.0.2.100], priority: { lb1: 150, lb2: 100 }, advert_interval: 50ms } ]
`, listen, scheduler)
	}
	var mu sync.Mutex
	lb1YAML := yaml(freeTCP(t), "rr")
	l, h := &link{}, &holder{held: map[string]bool{}}
	src := netip.MustParseAddr("192.0.2.1")
	ready := make(chan struct{})
	lb1 := New(Options{
		Load: func() (*config.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			return config.Parse("ha.yaml", []byte(strings.ReplaceAll(lb1YAML, "NODE", "lb1")))
		},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func() { close(ready) },
		HA: ha.Deps{
			Listen:      func(vrrp.ConnOptions) (vrrp.Conn, error) { return l.listen(src), nil },
			PrimaryAddr: func(string, vrrp.Family) (netip.Addr, error) { return src, nil },
			Announcer: func(*config.HAGroup, *slog.Logger) (vrrp.Announcer, error) {
				return fakeAnnouncer{h: h, node: "lb1"}, nil
			},
			LinkUp: func(string) (bool, error) { return true, nil },
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb1.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-ready
	lb2 := startHANode(t, l, h, "lb2", "192.0.2.2", yaml(freeTCP(t), "rr"))
	peerHash := func() string {
		g := lb2.Status().HA[0]
		if len(g.Peers) != 1 || g.Peers[0].Address != "192.0.2.1" {
			return ""
		}
		return g.Peers[0].ConfigHash
	}
	waitUntil(t, "lb2 hears lb1's config hash", func() bool {
		return haState(lb1) == "master" && peerHash() != ""
	})
	if got, want := peerHash(), lb1.Status().ConfigHash[:16]; got != want {
		t.Errorf("lb2's peer hash: got %s, want lb1's %s", got, want)
	}
	if strings.HasPrefix(lb2.Status().ConfigHash, peerHash()) {
		t.Error("lb1 and lb2 listen on different ports, yet the hashes agree")
	}
	old := peerHash()
	mu.Lock()
	lb1YAML = strings.Replace(lb1YAML, "scheduler: rr", "scheduler: wrr", 1)
	mu.Unlock()
	if err := lb1.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "lb2 hears lb1's new hash", func() bool { return peerHash() != old })
	if got, want := peerHash(), lb1.Status().ConfigHash[:16]; got != want {
		t.Errorf("after lb1's reload: lb2's peer hash %s, want %s", got, want)
	}
}

// TestHATrackingFollowsHealthNotAdminState: draining or disabling the
// tracked service's only backend on the master is an operator's change on
// this node, not a failure: the master keeps its priority and the VIP
// (before, the peer took the VIP over and served the drained backend).
// Its health check failing does move the VIP.
func TestHATrackingFollowsHealthNotAdminState(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	other, err := net.Listen("tcp", "127.0.0.1:0") // lb2's backend, always up
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	yaml := func(listen, backend string) string {
		return fmt.Sprintf(`node: { name: NODE }
admin: { listen: "off" }
services:
  - name: web
    listen: %s
    health: { type: tcp, interval: 50ms, timeout: 500ms, fall: 1, rise: 1 }
    backends: [ { address: %s } ]
ha:
  groups:
    - { name: web, interface: eth0, vrid: 51, vips: [192.0.2.100/24], priority: { lb1: 150, lb2: 100 }, track: { services: [web], weight: 100 } }
`, listen, backend)
	}
	l, h := &link{}, &holder{held: map[string]bool{}}
	lb1 := startHANode(t, l, h, "lb1", "192.0.2.1", yaml(freeTCP(t), backend))
	lb2 := startHANode(t, l, h, "lb2", "192.0.2.2", yaml(freeTCP(t), other.Addr().String()))
	waitUntil(t, "lb1 master, lb2 backup", func() bool { return haState(lb1) == "master" && haState(lb2) == "backup" })

	host := haHost{lb1}
	for _, state := range []string{"drain", "maint"} {
		if _, err := lb1.SetAdminState(ctx(t), "web", backend, state); err != nil {
			t.Fatal(err)
		}
		if ok, why := host.ServiceAlive("web"); !ok {
			t.Errorf("%s: tracked service counted as failed (%s), want alive", state, why)
		}
		// The tracker runs every 100 ms: five rounds, and the peers
		// exchange adverts meanwhile.
		time.Sleep(5 * trackRounds)
		g := lb1.Status().HA[0]
		if g.State != "master" || g.Priority != 150 || len(g.Track) != 1 || !g.Track[0].OK {
			t.Errorf("%s on the master: state %s priority %d track %+v, want master at 150 with the service ok", state, g.State, g.Priority, g.Track)
		}
	}
	// The backend really fails: the VIP moves.
	ln.Close()
	waitUntil(t, "lb2 takes over", func() bool { return haState(lb2) == "master" && haState(lb1) == "backup" })
	if ok, _ := host.ServiceAlive("web"); ok {
		t.Error("a service whose only backend is down counted as alive")
	}
}

// trackRounds is one round of the HA tracker (ha's trackEvery).
const trackRounds = 100 * time.Millisecond
