package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

const (
	// DefaultInterval is the advert interval when Config.Interval is 0:
	// a master that dies is replaced within about 0.4s.
	DefaultInterval = 100 * time.Millisecond
	// RFCDownAdverts is the number of adverts RFC 9568's master-down
	// interval waits for, used when Config.DownAdverts is 0.
	RFCDownAdverts = 3
	// OwnerPriority is the priority of the router that owns the virtual
	// addresses: it becomes master at once, without a master-down wait.
	OwnerPriority = 255
)

// Config is one virtual router's settings.
type Config struct {
	VRID uint8 // 1-255
	// Priority is 1-254, or 255 for the address owner. Tracking shifts it,
	// see Instance.SetPriorityDelta.
	Priority uint8
	Interval time.Duration // advert interval, a multiple of 10ms; 0: DefaultInterval
	// Preempt lets a backup take over from a live master of lower
	// priority (heartbeat's auto_failback). Without it a backup waits
	// for the master to fail.
	Preempt bool
	// PreemptDelay, with Preempt, keeps a live lower-priority master in
	// place for this long after we first hear it, so that a node that
	// just came back (and whose services are still warming up) does not
	// take the addresses at once. 0 preempts as RFC 9568 does: after one
	// master-down interval.
	PreemptDelay time.Duration
	// PreemptHold, when set, is asked before a backup preempts a live
	// master it outranks: a non-empty answer says why not yet, and the
	// backup stays backup (the master-down timer still guards against
	// the master's death), asking again at each of that master's
	// adverts; PreemptDelay then counts from the first advert it lets
	// through. It decides nothing when no master is heard: a node alone
	// takes over as usual. It is called on Run's goroutine and must not
	// block.
	PreemptHold func() string
	// VIPs are the virtual addresses, all IPv4 or all IPv6: RFC 9568 runs
	// one instance per family.
	VIPs []netip.Addr
	// Accept is RFC 9568's Accept_Mode: whether a master that does not
	// own the addresses accepts packets sent to them. The Instance does
	// not act on it; the Announcer built from the same Config does (a
	// load balancer's VIPs must accept, so it is normally true).
	Accept bool
	// LocalAddr is our primary address on the link, the one adverts are
	// sent from (see PrimaryAddr): equal priorities elect the higher.
	LocalAddr netip.Addr
	// DownAdverts is how many advert intervals a backup waits, before the
	// skew, for a master that went silent: 0 means RFC 9568's 3. Fewer
	// fail over sooner and tolerate fewer lost adverts in a row; it is a
	// local choice, so peers (keepalived) may use another.
	DownAdverts int
	// InitDead is how long a starting backup listens for an existing
	// master before it may take over (heartbeat's initdead): its first
	// master-down timer runs for InitDead plus its skew, when that is
	// longer than its master-down interval. Without it a node whose own
	// adverts are short claims the addresses after two or three of its
	// own intervals, before a live master that advertises less often
	// (keepalived's default is 1s) has said a word. The first valid
	// advert ends the wait, so it costs nothing when a master is there;
	// it delays only a cold start, when no master is. 0: none.
	InitDead time.Duration
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.VRID == 0 {
		errs = append(errs, errors.New("vrid 0: want 1-255"))
	}
	if c.Priority == 0 {
		errs = append(errs, errors.New("priority 0 is reserved for a master that leaves: want 1-255"))
	}
	if iv := c.Interval; iv != 0 && (iv%centisecond != 0 || iv < centisecond || iv > MaxInterval) {
		errs = append(errs, fmt.Errorf("interval %v: want a multiple of 10ms in [10ms, %v]", iv, MaxInterval))
	}
	if c.DownAdverts < 0 || c.DownAdverts == 1 || c.DownAdverts > 255 {
		errs = append(errs, fmt.Errorf("down adverts %d: want 2-255, or 0 for RFC 9568's 3", c.DownAdverts))
	}
	if c.InitDead < 0 {
		errs = append(errs, fmt.Errorf("initdead %v is negative", c.InitDead))
	}
	if c.PreemptDelay < 0 {
		errs = append(errs, fmt.Errorf("preempt delay %v is negative", c.PreemptDelay))
	}
	if len(c.VIPs) == 0 || len(c.VIPs) > 255 {
		errs = append(errs, fmt.Errorf("%d virtual addresses: want 1-255", len(c.VIPs)))
	}
	seen := make(map[netip.Addr]bool, len(c.VIPs))
	for _, v := range c.VIPs {
		switch {
		case !v.IsValid() || v.Is4In6() || v.Zone() != "":
			errs = append(errs, fmt.Errorf("virtual address %v: want a plain IPv4 or IPv6 address", v))
		case len(c.VIPs) > 0 && v.Is4() != c.VIPs[0].Is4():
			errs = append(errs, fmt.Errorf("virtual address %v: mixes families with %v; use one instance per family", v, c.VIPs[0]))
		case seen[v]:
			errs = append(errs, fmt.Errorf("virtual address %v: listed twice", v))
		}
		seen[v] = true
	}
	switch l := c.LocalAddr; {
	case !l.IsValid():
		errs = append(errs, errors.New("no local address: the election's tie-break needs ours"))
	case l.Is4In6():
		errs = append(errs, fmt.Errorf("local address %v: IPv4-mapped", l))
	case len(c.VIPs) > 0 && l.Is4() != c.VIPs[0].Is4():
		errs = append(errs, fmt.Errorf("local address %v is not of the virtual addresses' family", l))
	}
	if len(errs) > 0 {
		return fmt.Errorf("vrrp: vrid %d: %w", c.VRID, errors.Join(errs...))
	}
	return nil
}

// masterDownInterval is how long a backup waits without adverts before it
// takes over: n adverts missed (RFC 9568 section 6.1 says three), plus a
// skew by which higher priorities go first. Computed in nanoseconds rather
// than the RFC's centiseconds, so that priorities a few apart still differ.
func masterDownInterval(adver time.Duration, prio uint8, n int) time.Duration {
	return time.Duration(n)*adver + skewTime(adver, prio)
}

// startupDown is a starting backup's first master-down timer: the
// listen period or the master-down interval, whichever is longer, plus the
// skew, so that at a cold start of every node the highest priority still
// goes first. listening reports whether the listen period is the longer.
func startupDown(c Config, prio uint8) (d time.Duration, listening bool) {
	md := time.Duration(c.DownAdverts) * c.Interval
	return max(c.InitDead, md) + skewTime(c.Interval, prio), c.InitDead > md
}

func skewTime(adver time.Duration, prio uint8) time.Duration {
	return time.Duration(256-int64(prio)) * adver / 256
}
