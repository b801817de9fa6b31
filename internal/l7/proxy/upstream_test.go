package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// fakeUp is a pooled connection over a pipe, to test the pool's bookkeeping.
func fakeUp(t *testing.T, hp *hostPool) (*upConn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	u := &upConn{hp: hp}
	u.tc.nc = a
	hp.mu.Lock()
	hp.all[u] = struct{}{}
	hp.mu.Unlock()
	return u, b
}

func TestHostPool(t *testing.T) {
	hp := newHostPool(nil, balancer.NewBackend(netip.MustParseAddrPort("192.0.2.1:80"), 1, 0))
	var us []*upConn
	for range 4 {
		u, _ := fakeUp(t, hp)
		us = append(us, u)
	}
	// Bounded: the fourth put finds the pool full and closes.
	for _, u := range us {
		hp.put(u, 3, time.Now())
	}
	if len(hp.idle) != 3 || len(hp.all) != 3 {
		t.Fatalf("idle %d, open %d; want 3 and 3", len(hp.idle), len(hp.all))
	}
	// LIFO: the warmest first.
	if got := hp.get(time.Now()); got != us[2] {
		t.Errorf("get: got connection %p, want the last put (%p)", got, us[2])
	}
	// Aged out at the bottom: pruned by the next put.
	hp.idle[0].idleAt = time.Now().Add(-2 * upstreamMaxIdle)
	oldest := hp.idle[0]
	hp.put(us[2], 3, time.Now())
	for _, u := range hp.idle {
		if u == oldest {
			t.Error("an aged-out idle connection was kept")
		}
	}
	if _, open := hp.all[oldest]; open {
		t.Error("the aged-out connection is still counted open")
	}
	// Aged out at the top: get skips and closes it.
	for _, u := range hp.idle {
		u.idleAt = time.Now().Add(-2 * upstreamMaxIdle)
	}
	if got := hp.get(time.Now()); got != nil {
		t.Errorf("get returned an aged-out connection")
	}
	if len(hp.all) != 0 {
		t.Errorf("open after aging out: %d, want 0", len(hp.all))
	}
	// Retired: nothing is pooled any more.
	u, _ := fakeUp(t, hp)
	hp.retire()
	hp.put(u, 3, time.Now())
	if len(hp.idle) != 0 || len(hp.all) != 0 {
		t.Errorf("retired pool kept a connection")
	}
}

// TestCloseBackendReachesADial: a backend taken out of the config while a
// request's connection to it is being dialled, and then closed
// (CloseBackend after removal_grace), does not keep that connection. The
// pool used to be forgotten at the Update, its connection counted only
// once registered, so the dial finished into a pool nobody could close.
func TestCloseBackendReachesADial(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	spare := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {})
	svc, bs := service(t, netip.MustParseAddrPort(ln.Addr().String()))
	p, addr := startProxy(t, &Config{Default: svc})

	connected, resume := make(chan struct{}), make(chan struct{})
	p.poolsMu.Lock()
	hp := p.pools[bs[0]]
	p.poolsMu.Unlock()
	hp.mu.Lock()
	hp.testAfterDial = func() {
		close(connected)
		<-resume
	}
	hp.mu.Unlock()

	c := dial(t, addr)
	c.send(get("/"))
	select {
	case <-connected:
	case <-time.After(waitFor):
		t.Fatal("the proxy did not dial the backend")
	}
	// The daemon's order: the backend leaves the config, and after the
	// grace its connections are closed.
	svc2, _ := service(t, spare.addr)
	p.Update(&Config{Name: "web", Default: svc2, Log: testLogger(t)})
	p.CloseBackend(bs[0])
	close(resume)

	var up net.Conn
	select {
	case up = <-accepted:
	case <-time.After(waitFor):
		t.Fatal("the backend saw no connection")
	}
	up.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, up); err != nil {
		t.Fatalf("the connection dialled during the removal was kept: %v", err)
	}
}
