package proxy

import (
	"net"
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
		hp.put(u, 3)
	}
	if len(hp.idle) != 3 || len(hp.all) != 3 {
		t.Fatalf("idle %d, open %d; want 3 and 3", len(hp.idle), len(hp.all))
	}
	// LIFO: the warmest first.
	if got := hp.get(); got != us[2] {
		t.Errorf("get: got connection %p, want the last put (%p)", got, us[2])
	}
	// Aged out at the bottom: pruned by the next put.
	hp.idle[0].idleAt = time.Now().Add(-2 * upstreamMaxIdle)
	oldest := hp.idle[0]
	hp.put(us[2], 3)
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
	if got := hp.get(); got != nil {
		t.Errorf("get returned an aged-out connection")
	}
	if len(hp.all) != 0 {
		t.Errorf("open after aging out: %d, want 0", len(hp.all))
	}
	// Retired: nothing is pooled any more.
	u, _ := fakeUp(t, hp)
	hp.retire()
	hp.put(u, 3)
	if len(hp.idle) != 0 || len(hp.all) != 0 {
		t.Errorf("retired pool kept a connection")
	}
}
