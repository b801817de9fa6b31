package daemon

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// TestPreemptHoldFlowSync: the HA groups of a director's VIPs are held
// back from preempting while the director does not forward to a healthy
// backend yet, or the daemon's flow sync has not received its peer's
// table, and released once it has — with the table's flows already
// installed. The peer is a real Syncer over loopback, started late as a
// returning node's peer would answer. Groups of other VIPs are never
// held.
func TestPreemptHoldFlowSync(t *testing.T) {
	t.Parallel()
	adminAddr, proxied, backend := freeTCP(t), freeTCP(t), echoBackend(t, "b1")
	td, dirs := startDirectorDaemon(t, syncYAML(adminAddr, proxied, backend, ""))
	host := haHost{td.d}
	vip := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}
	other := []netip.Prefix{netip.PrefixFrom(netip.MustParseAddrPort(proxied).Addr(), 32)}
	if why := host.PreemptHold(vip); why != "" {
		t.Errorf("without flow sync: held %q, want not held", why)
	}
	// A backend whose next hop is not resolved yet: its flows would go
	// elsewhere.
	web := dirs.last().service("web")
	const unresolved = "next hop not resolved yet: no neighbour entry for 10.0.0.2 on eth0"
	web.setUnreachable("10.0.0.2:80", unresolved)
	if why, want := host.PreemptHold(vip), "not yet forwarding to web 10.0.0.2:80 ("+unresolved+")"; why != want {
		t.Errorf("backend unresolved: held %q, want %q", why, want)
	}
	if why := host.PreemptHold(other); why != "" {
		t.Errorf("backend unresolved, a VIP without director services: held %q, want not held", why)
	}
	web.mu.Lock()
	delete(web.unreachable, netip.MustParseAddrPort("10.0.0.2:80"))
	web.mu.Unlock()
	if why := host.PreemptHold(vip); why != "" {
		t.Errorf("backend resolved: held %q, want not held", why)
	}

	// The peer's socket is bound (its address goes in the config) but
	// nobody answers on it yet.
	peerConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peerConn.Close() })
	peerAddr := peerConn.LocalAddr().String()
	listen := freeport.UDP(t)
	if err := td.reload(syncYAML(adminAddr, proxied, backend, listen, peerAddr)); err != nil {
		t.Fatal(err)
	}
	if why, want := host.PreemptHold(vip), "waiting for the flow table of "+peerAddr; why != want {
		t.Errorf("peer not answering: held %q, want %q", why, want)
	}
	if why := host.PreemptHold(other); why != "" {
		t.Errorf("a VIP without director services: held %q, want not held", why)
	}

	// The peer comes up: a real Syncer whose table holds syncFlow,
	// pinned to 10.0.0.2 while its ring picks 10.0.0.1. It answers the
	// daemon's next join with that flow, then "done".
	pk := &fakeKernel{}
	peer, err := flowsync.New(flowsync.Options{Node: "lb2", Conn: peerConn, Peers: []netip.AddrPort{netip.MustParseAddrPort(listen)},
		Table: pk, Resolver: pk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); peer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	k := dirs.last().kernel()
	waitUntil(t, "the hold released", func() bool {
		why := host.PreemptHold(vip)
		if why != "" && !strings.HasPrefix(why, "waiting for the flow table of ") {
			t.Fatalf("held %q, want the flow table waited for", why)
		}
		return why == ""
	})
	k.mu.Lock()
	slot, ok := k.inserted[syncFlow]
	k.mu.Unlock()
	if !ok || slot != 2 {
		t.Errorf("hold released with the peer's flow installed at slot %d (%v), want slot 2 (10.0.0.2) before", slot, ok)
	}
}
