package ha

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// Handover installs the packet-filter rules of a planned hand-over; the
// netif package implements it with nft, tests with fakes.
type Handover interface {
	// Relay, on the new master, passes the packets of connections it does
	// not know, sent to vips, to the previous master prev.
	Relay(ctx context.Context, vips []netip.Addr, prev netip.Addr) error
	StopRelay(ctx context.Context) error
	// Quiet, on the old master, stops it announcing the vips it still
	// holds for its connections.
	Quiet(ctx context.Context, vips []netip.Addr) error
	StopQuiet(ctx context.Context) error
}

// handoverPoll is how often a holding old master looks whether its
// connections on the VIPs are done.
const handoverPoll = 20 * time.Millisecond

// handoverAnnouncer makes a planned hand-over lose no connection. The new
// master relays, for up to timeout, the packets of the old master's
// connections that the neighbours now send to it; the old master keeps the
// VIPs, quiet, until those connections are done (busy reports false) or
// timeout passes, and only then removes them.
type handoverAnnouncer struct {
	vrrp.Announcer
	ho   Handover
	busy func() bool
	// release turns keep-alive off (true) on the HTTP services of the
	// VIPs while they are held, so that clients move to the new master
	// at their next request, and back on (false); nil: none.
	release func(on bool)
	timeout time.Duration
	log     *slog.Logger
	holds   *sync.WaitGroup // the daemon's: shutdown waits for holds to end

	mu         sync.Mutex
	relayTimer *time.Timer   // ends the relay; nil when not relaying
	hold       chan struct{} // closed to cancel the pending hold; nil when none
}

var _ vrrp.HandoverAnnouncer = (*handoverAnnouncer)(nil)

func (a *handoverAnnouncer) AcquireFrom(ctx context.Context, vips []netip.Addr, prev netip.Addr) error {
	a.cancelHold(ctx)
	if a.timeout > 0 {
		// Before the addresses and their gratuitous ARP: the first packet
		// a neighbour sends us afterwards may already be the old master's.
		if err := a.ho.Relay(ctx, vips, prev); err != nil {
			a.log.Warn("hand-over: cannot relay the old master's connections; they will be reset", "previous", prev, "err", err)
		} else {
			a.log.Info("hand-over: relaying the old master's connections", "previous", prev, "for", a.timeout)
			a.mu.Lock()
			if a.relayTimer != nil {
				a.relayTimer.Stop()
			}
			a.relayTimer = time.AfterFunc(a.timeout, func() { a.stopRelay(context.Background()) })
			a.mu.Unlock()
		}
	}
	return a.Announcer.Acquire(ctx, vips)
}

func (a *handoverAnnouncer) Acquire(ctx context.Context, vips []netip.Addr) error {
	a.cancelHold(ctx)
	return a.Announcer.Acquire(ctx, vips)
}

func (a *handoverAnnouncer) Release(ctx context.Context, vips []netip.Addr) error {
	a.stopRelay(ctx)
	return a.Announcer.Release(ctx, vips)
}

// ReleaseTo keeps the VIPs while connections on them are in flight: next
// relays their packets to us. next is invalid when a node shutting down
// heard no successor in time: one that takes over later relays all the
// same, and without one the connections finish here.
func (a *handoverAnnouncer) ReleaseTo(ctx context.Context, vips []netip.Addr, next netip.Addr) error {
	a.stopRelay(ctx)
	if a.timeout <= 0 || !a.busy() {
		return a.Announcer.Release(ctx, vips)
	}
	// Holding the VIPs is safe only if we do not answer for them: a
	// neighbour that asked now would come back to us.
	if err := a.ho.Quiet(ctx, vips); err != nil {
		a.log.Warn("hand-over: cannot keep quiet about the VIPs, releasing them now", "err", err)
		return a.Announcer.Release(ctx, vips)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold != nil {
		return nil // already holding
	}
	cancel := make(chan struct{})
	a.hold = cancel
	a.holds.Add(1)
	newMaster := "none heard yet"
	if next.IsValid() {
		newMaster = next.String()
	}
	a.log.Info("hand-over: keeping the VIPs for the connections on them", "new_master", newMaster, "at_most", a.timeout)
	a.setRelease(true)
	go func() {
		defer a.holds.Done()
		start := time.Now()
		deadline := time.NewTimer(a.timeout)
		defer deadline.Stop()
		tick := time.NewTicker(handoverPoll)
		defer tick.Stop()
	wait:
		for a.busy() {
			select {
			case <-cancel:
				return
			case <-deadline.C:
				break wait
			case <-tick.C:
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		select {
		case <-cancel: // master again meanwhile: the VIPs stay
			return
		default:
		}
		a.hold = nil
		a.setRelease(false)
		rctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := a.Announcer.Release(rctx, vips); err != nil {
			a.log.Error("hand-over: releasing the VIPs failed", "err", err)
		}
		if err := a.ho.StopQuiet(rctx); err != nil {
			a.log.Warn("hand-over: removing the quiet rules failed", "err", err)
		}
		a.log.Info("hand-over: VIPs released", "held", time.Since(start).Round(time.Millisecond), "connections_done", !a.busy())
	}()
	return nil
}

func (a *handoverAnnouncer) setRelease(on bool) {
	if a.release != nil {
		a.release(on)
	}
}

// cancelHold keeps the VIPs of a pending hold: we are master again.
func (a *handoverAnnouncer) cancelHold(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold == nil {
		return
	}
	close(a.hold)
	a.hold = nil
	a.setRelease(false)
	if err := a.ho.StopQuiet(ctx); err != nil {
		a.log.Warn("hand-over: removing the quiet rules failed", "err", err)
	}
}

func (a *handoverAnnouncer) stopRelay(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.relayTimer == nil {
		return
	}
	a.relayTimer.Stop()
	a.relayTimer = nil
	if err := a.ho.StopRelay(ctx); err != nil {
		a.log.Warn("hand-over: removing the relay rules failed", "err", err)
	}
}

// clear removes rules a crashed run may have left; a group starts with it.
func (a *handoverAnnouncer) clear(ctx context.Context) {
	if a.ho == nil {
		return
	}
	a.ho.StopRelay(ctx)
	a.ho.StopQuiet(ctx)
}

// Close ends the relay and closes the inner announcer — after a pending
// hold, which releases the VIPs, has finished.
func (a *handoverAnnouncer) Close() error {
	a.stopRelay(context.Background())
	a.mu.Lock()
	holding := a.hold != nil
	a.mu.Unlock()
	if !holding {
		closeAnnouncer(a.Announcer)
		return nil
	}
	go func() {
		a.holds.Wait()
		closeAnnouncer(a.Announcer)
	}()
	return nil
}
