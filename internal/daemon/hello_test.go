package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// freeUDPPort finds a port free on 127.0.0.1 and 127.0.0.2, below the
// ephemeral range (freeport.UDP): no outgoing datagram's source can take
// it before the daemons bind it, only a process choosing that very port.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		port := netip.MustParseAddrPort(freeport.UDP(t)).Port()
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.2:%d", port))
		if err == nil {
			c.Close()
			return int(port)
		}
	}
	t.Fatal("no free UDP port on 127.0.0.1 and 127.0.0.2")
	return 0
}

// startHelloNode runs a daemon whose VRRP is the in-memory link and whose
// hello uses real UDP sockets on addr (127.0.0.x), unicast to its peer.
// The config is read from *yaml at every (re)load.
func startHelloNode(t *testing.T, l *link, h *holder, node, addr string, yaml *atomic.Pointer[string]) *Daemon {
	t.Helper()
	src := netip.MustParseAddr(addr)
	ready := make(chan struct{})
	d := New(Options{
		Load: func() (*config.Config, error) {
			cfg, err := config.Parse("ha.yaml", []byte(strings.ReplaceAll(*yaml.Load(), "NODE", node)))
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
			HelloListen: func(is6 bool, port int) (net.PacketConn, error) {
				if is6 {
					return nil, fmt.Errorf("no IPv6 in this test")
				}
				return net.ListenPacket("udp4", fmt.Sprintf("%s:%d", addr, port))
			},
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

// helloNodeConfigs returns configs for startHelloNode: one service and one
// group on lo, the same on every node but for the service's listen
// address (two daemons in one process cannot bind one), the unicast peer
// and the hello port.
func helloNodeConfigs(t *testing.T) func(peer, listen string, helloPort int) *atomic.Pointer[string] {
	t.Helper()
	tcpPort := netip.MustParseAddrPort(freeport.TCP(t)).Port()
	return func(peer, listen string, helloPort int) *atomic.Pointer[string] {
		p := new(atomic.Pointer[string])
		s := fmt.Sprintf(`node: { name: NODE }
admin: { listen: "off" }
services:
  - name: web
    listen: %s:%d
    protocol: http
    scheduler: rr
    backends: [ { address: 127.0.0.1:9 }, { address: 127.0.0.1:10 } ]
    http:
      routes:
        - { name: api, path_prefix: /api/, backends: [ { address: 127.0.0.1:11 } ] }
ha:
  hello_port: %d
  groups:
    - name: web
      interface: lo
      vrid: 51
      vips: [192.0.2.100/24]
      priority: { lb1: 150, lb2: 100, lb3: 50 }
      unicast_peers: [%s]
      initdead: 0s
`, listen, tcpPort, helloPort, peer)
		p.Store(&s)
		return p
	}
}

// peerOf is the group's peer at addr in d's status.
func peerOf(d *Daemon, addr string) (admin.HAPeer, bool) {
	for _, g := range d.Status().HA {
		for _, p := range g.Peers {
			if p.Address == addr {
				return p, true
			}
		}
	}
	return admin.HAPeer{}, false
}

// Without auth_key_file adverts carry no hash: the hello alone tells the
// master and the backup which config the other runs, and a reload is
// announced at once.
func TestHelloConfigHashBothWays(t *testing.T) {
	t.Parallel()
	port := freeUDPPort(t)
	// Two daemons in one process cannot bind one listen address, so their
	// configs (and hashes) differ by it: each must see the other's.
	cfg := helloNodeConfigs(t)
	l, h := &link{}, &holder{held: map[string]bool{}}
	y1, y2 := cfg("127.0.0.2", "127.0.0.1", port), cfg("127.0.0.1", "127.0.0.2", port)
	lb1 := startHelloNode(t, l, h, "lb1", "127.0.0.1", y1)
	lb2 := startHelloNode(t, l, h, "lb2", "127.0.0.2", y2)
	waitUntil(t, "lb1 master", func() bool { return haState(lb1) == "master" && haState(lb2) == "backup" })
	hash, hash2 := lb1.Status().ConfigHash, lb2.Status().ConfigHash
	waitUntil(t, "both hear each other's hello", func() bool {
		p1, ok1 := peerOf(lb1, "127.0.0.2")
		p2, ok2 := peerOf(lb2, "127.0.0.1")
		return ok1 && ok2 && p1.Node == "lb2" && p1.State == "backup" && p1.Priority == 100 && p1.ConfigHash == hash2[:16] &&
			p2.Node == "lb1" && p2.State == "master" && p2.ConfigHash == hash[:16]
	})
	// lb2's peer is heard by VRRP and hello: one peer, merged.
	for _, g := range lb2.Status().HA {
		if len(g.Peers) != 1 || g.Peers[0].Adverts == 0 || g.Peers[0].Hellos == 0 {
			t.Errorf("lb2's peers: %+v", g.Peers)
		}
		if g.HellosSent == 0 {
			t.Errorf("lb2 sent no hello: %+v", g)
		}
	}

	s := strings.Replace(*y1.Load(), "scheduler: rr", "scheduler: wrr", 1)
	y1.Store(&s)
	start := time.Now()
	if err := lb1.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	newHash := lb1.Status().ConfigHash
	if newHash == hash {
		t.Fatal("reload did not change the hash")
	}
	waitUntil(t, "lb2 hears lb1's new hash", func() bool {
		p, ok := peerOf(lb2, "127.0.0.1")
		return ok && p.ConfigHash == newHash[:16]
	})
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the new hash took %v to arrive: not sent right after the reload", d)
	}
	if haState(lb1) != "master" {
		t.Errorf("the reload disturbed the group: lb1 %s", haState(lb1))
	}
}

// A hello port that cannot be bound fails the reload like a listener
// would, leaving the running config in place; hello_port 0 turns it off.
func TestHelloReload(t *testing.T) {
	t.Parallel()
	port, busy := freeUDPPort(t), freeUDPPort(t)
	hold, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", busy))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	listen := freeport.TCP(t)
	yaml := func(port int) *string {
		s := fmt.Sprintf(`node: { name: NODE }
admin: { listen: "off" }
services: [ { name: web, listen: %s, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  hello_port: %d
  groups:
    - { name: web, interface: lo, vrid: 51, vips: [192.0.2.100/24], priority: { lb1: 150 }, unicast_peers: [127.0.0.2] }
`, listen, port)
		return &s
	}
	y := new(atomic.Pointer[string])
	y.Store(yaml(port))
	d := startHelloNode(t, &link{}, &holder{held: map[string]bool{}}, "lb1", "127.0.0.1", y)
	waitUntil(t, "a hello sent", func() bool { return d.Status().HA[0].HellosSent > 0 })
	hash := d.Status().ConfigHash

	y.Store(yaml(busy))
	if err := d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("reload onto a busy hello port: %v", err)
	}
	if d.Status().ConfigHash != hash || d.ha.Hello() == nil {
		t.Fatal("the failed reload changed the running config or stopped the hello")
	}

	y.Store(yaml(0))
	if err := d.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.ha.Hello() != nil || d.Status().HA[0].HellosSent != 0 {
		t.Error("hello_port 0 left the hello running")
	}
	// The port is free again.
	c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("hello socket not closed: %v", err)
	}
	c.Close()
}
