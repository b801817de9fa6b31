package ha

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// holdHost is a Host whose PreemptHold answers hold, and records the
// VIPs it was asked about.
type holdHost struct {
	fakeHost
	hold  atomic.Pointer[string]
	mu    sync.Mutex
	asked []netip.Prefix
}

func (h *holdHost) set(why string) { h.hold.Store(&why) }

func (h *holdHost) PreemptHold(vips []netip.Prefix) string {
	h.mu.Lock()
	h.asked = vips
	h.mu.Unlock()
	return *h.hold.Load()
}

var (
	holdPeer = netip.MustParseAddr("192.0.2.2")
	holdVIP  = netip.MustParseAddr("192.0.2.100")
)

// advertise plays a live master of priority 100 on 100ms adverts to
// the group on c until stop is closed.
func advertise(c *loneConn, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case c.in <- vrrp.Packet{Src: holdPeer, TTL: 255, Advert: vrrp.Advert{VRID: 51, Priority: 100,
			MaxAdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{holdVIP}}}:
		case <-stop:
			return
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// holdYAML is group web of node lb1 (priority 150, preempting a lower
// lb2).
const holdYAML = `node: { name: lb1 }
services: [ { name: web, listen: 127.0.0.1:1, backends: [ { address: 127.0.0.1:9 } ] } ]
ha:
  groups:
    - { name: web, interface: eth0, vrid: 51, vips: [192.0.2.100], priority: { lb1: 150, lb2: 100 }, advert_interval: 100ms }
`

// TestPreemptHold: a node that outranks the live master leaves it in
// place while its host holds the preemption (a returning director
// waiting for its peers' flow tables), shows why in its status, and
// preempts once the hold ends — or at MaxPreemptHold, if it never does.
// With no master heard, the hold changes nothing: it takes over at once.
func TestPreemptHold(t *testing.T) {
	t.Parallel()
	const why = "waiting for the flow table of lb2"
	// becomesMaster runs the group against a live master (or none), ends
	// the hold at release (never if 0) and returns when it became
	// master, from the start, checking the status while it is held.
	becomesMaster := func(t *testing.T, master bool, release time.Duration) time.Duration {
		host := &holdHost{}
		host.set(why)
		conn := &loneConn{in: make(chan vrrp.Packet)}
		begin := time.Now()
		m := startManagerOn(t, holdYAML, host, func() vrrp.Conn { return conn })
		stop := make(chan struct{})
		if master {
			go advertise(conn, stop)
		}
		defer close(stop)
		if release > 0 {
			time.AfterFunc(release, func() { host.set("") })
		}
		checked := false
		for time.Since(begin) < 30*time.Second {
			time.Sleep(10 * time.Millisecond)
			st := m.Status()[0]
			if st.State == "master" {
				if master && !checked {
					t.Error("became master without a status showing the hold first")
				}
				return time.Since(begin)
			}
			if master && st.Master == holdPeer.String() && time.Since(begin) > time.Second && !checked {
				checked = true
				if st.PreemptHeld != why {
					t.Errorf("status preempt_held %q, want %q", st.PreemptHeld, why)
				}
				if want := begin.Add(MaxPreemptHold); !st.PreemptHoldUntil.Equal(want) {
					t.Errorf("status preempt_hold_until %v, want %v", st.PreemptHoldUntil, want)
				}
				host.mu.Lock()
				asked := host.asked
				host.mu.Unlock()
				if len(asked) != 1 || asked[0].Addr() != holdVIP {
					t.Errorf("host asked about %v, want the group's VIP %v", asked, holdVIP)
				}
			}
		}
		t.Fatal("never became master")
		return 0
	}
	// The master-down interval of priority 150 on 100ms adverts, plus
	// an advert interval and the status poll: preempting takes that
	// once the hold ends.
	const preempt = 400 * time.Millisecond

	t.Run("held, then released", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := becomesMaster(t, true, 3*time.Second)
			if got < 3*time.Second || got > 3*time.Second+preempt {
				t.Errorf("became master after %v, want within %v of the hold's end at 3s", got, preempt)
			}
		})
	})
	t.Run("held to the bound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := becomesMaster(t, true, 0)
			if got < MaxPreemptHold || got > MaxPreemptHold+preempt {
				t.Errorf("became master after %v, want within %v of the bound %v", got, preempt, MaxPreemptHold)
			}
		})
	})
	t.Run("no master heard", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// initdead (2s) plus the skew: nobody is there.
			if got := becomesMaster(t, false, 0); got > 2*time.Second+preempt {
				t.Errorf("alone, became master after %v, want at initdead (2s): the hold must not delay it", got)
			}
		})
	})
}
