package netif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

const (
	// DefaultRepeat and DefaultRepeatInterval: three announcements 10ms
	// apart, so that one lost packet does not leave a neighbour sending
	// to the old master, and all are out well within one 100ms advert
	// interval. keepalived sends 5 (garp_master_repeat), but with its
	// slower failover a few ms more do not show.
	DefaultRepeat         = 3
	DefaultRepeatInterval = 10 * time.Millisecond

	// labelSuffix marks IPv4 addresses as ours in `ip addr` (IPv6 has no
	// labels). The kernel takes labels of at most 15 bytes that begin
	// with the interface's name; longer names go without.
	labelSuffix = ":fulcrum"
	maxLabelLen = 15
)

var (
	// ErrNoInterface is wrapped by errors about an interface that does
	// not exist (in the network namespace the caller is in).
	ErrNoInterface = errors.New("no such interface")
	// ErrClosed is returned by an Announcer's methods after Close.
	ErrClosed = errors.New("announcer closed")
)

// Options configures New.
type Options struct {
	// Interface is the link the addresses go on and are announced on.
	Interface string
	// Prefixes gives virtual addresses a prefix length, as keepalived's
	// virtual_ipaddress does: 192.168.0.105/24 is added as such, with
	// the subnet's route. An address not listed is added as a host
	// address, /32 or /128.
	Prefixes []netip.Prefix
	// Repeat is how many gratuitous ARPs or unsolicited NAs go out for
	// each address on Acquire and Announce; 0 means DefaultRepeat. The
	// first goes out before the call returns, the others in the
	// background, so a long series never holds up the caller.
	Repeat int
	// RepeatInterval separates them; 0 means DefaultRepeatInterval.
	RepeatInterval time.Duration
	// Refresh, if not 0, re-announces every held address this often, one
	// packet each (keepalived's garp_master_refresh): for neighbours that
	// missed the move or age entries out and then ask a stale switch.
	Refresh time.Duration
	// Log receives address changes at Info and announcing that starts or
	// stops failing at Warn/Info; nil discards.
	Log *slog.Logger
}

func (o Options) validate() error {
	var errs []error
	if o.Interface == "" {
		errs = append(errs, errors.New("no interface"))
	}
	if o.Repeat < 0 {
		errs = append(errs, fmt.Errorf("repeat %d is negative", o.Repeat))
	}
	if o.RepeatInterval < 0 {
		errs = append(errs, fmt.Errorf("repeat interval %v is negative", o.RepeatInterval))
	}
	if o.Refresh < 0 {
		errs = append(errs, fmt.Errorf("refresh %v is negative", o.Refresh))
	}
	seen := make(map[netip.Addr]bool, len(o.Prefixes))
	for _, p := range o.Prefixes {
		a := p.Addr()
		switch {
		case !p.IsValid() || a.Zone() != "" || a.Is4In6():
			errs = append(errs, fmt.Errorf("prefix %v: want a plain IPv4 or IPv6 address and a length", p))
		case seen[a]:
			errs = append(errs, fmt.Errorf("prefix %v: address %v listed twice", p, a))
		}
		seen[a] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("netif: %s: %w", o.Interface, errors.Join(errs...))
	}
	return nil
}

// Counters are an Announcer's totals since New.
type Counters struct {
	Added   uint64 // addresses added; not those that were already there
	Removed uint64 // addresses removed; not those that were already gone
	ARPSent uint64 // gratuitous ARPs sent
	NASent  uint64 // unsolicited neighbour advertisements sent
	Errors  uint64 // failed lookups, address changes and sends
}

// Announcer moves virtual addresses onto and off one interface and
// announces them: the privileged side of vrrp.Announcer.
//
// Its methods are safe for concurrent use. They are serialised, each
// holding the Announcer for a few netlink round trips and packet sends,
// never for a repeat interval: repeats and refreshes go out from a
// goroutine of its own, which sends only addresses still held, so that
// nothing is announced after Release has returned.
type Announcer struct {
	ifname   string
	prefixes map[netip.Addr]netip.Prefix
	repeat   int
	interval time.Duration
	refresh  time.Duration
	log      *slog.Logger
	sys      system

	mu        sync.Mutex
	closed    bool
	held      []netip.Addr // acquired and not released: refreshed
	burst     []netip.Addr // repeats still due, a subset of held
	burstLeft int
	failing   bool // the background's last announcement failed

	kick      chan struct{} // a burst started; capacity 1
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	added, removed, arpSent, naSent, errs atomic.Uint64
}

var _ vrrp.Announcer = (*Announcer)(nil)

// system is the privileged half: netlink and a packet socket on Linux, a
// fake in tests. An Announcer calls it with its mutex held, so it need not
// be safe for concurrent use.
type system interface {
	// link looks the interface up afresh on each call, so that one that
	// was re-created (a VLAN, a bond) is found under its new index; an
	// error for a missing one wraps ErrNoInterface.
	link(name string) (linkInfo, error)
	// addAddr reports added false, and no error, for an address that is
	// already there.
	addAddr(l linkInfo, p netip.Prefix, label string) (added bool, err error)
	// delAddr reports removed false, and no error, for one that is not.
	delAddr(l linkInfo, p netip.Prefix) (removed bool, err error)
	send(l linkInfo, frame []byte) error
	close() error
}

type linkInfo struct {
	name  string
	index int
	mac   net.HardwareAddr
	// announce: an Ethernet link that uses ARP. Others (tun, WireGuard,
	// NOARP links) keep no neighbour caches for us to correct.
	announce bool
	// router: the interface forwards IPv6, so NAs carry the Router flag.
	router bool
}

// New returns an Announcer for opts.Interface, which must exist.
//
// Its netlink and packet sockets belong to the network namespace of the
// calling thread: a caller that switches namespaces locks its OS thread
// around New, and may use the Announcer from anywhere after. Close it
// when done with it.
func New(opts Options) (*Announcer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s, err := newSystem(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("netif: %s: %w", opts.Interface, err)
	}
	l, err := s.link(opts.Interface)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("netif: %w", err)
	}
	a := newAnnouncer(opts, s)
	if !l.announce {
		a.log.Info("interface does not use ARP: addresses will move without gratuitous ARP or NA")
	}
	return a, nil
}

// newAnnouncer takes validated opts.
func newAnnouncer(opts Options, s system) *Announcer {
	a := &Announcer{
		ifname:   opts.Interface,
		prefixes: make(map[netip.Addr]netip.Prefix, len(opts.Prefixes)),
		repeat:   opts.Repeat,
		interval: opts.RepeatInterval,
		refresh:  opts.Refresh,
		log:      opts.Log,
		sys:      s,
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, p := range opts.Prefixes {
		a.prefixes[p.Addr()] = p
	}
	if a.repeat == 0 {
		a.repeat = DefaultRepeat
	}
	if a.interval == 0 {
		a.interval = DefaultRepeatInterval
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("interface", opts.Interface)
	go a.run()
	return a
}

// Acquire adds the addresses (an address already there is fine) and
// announces each one that is there: the first packet before it returns,
// the repeats in the background. It stops adding when ctx is done. The
// error joins every failure; the addresses that could be added are held
// and announced all the same.
func (a *Announcer) Acquire(ctx context.Context, vips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, err := a.linkLocked("acquire")
	if err != nil {
		return err
	}
	var errs []error
	got := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("netif: acquire on %s: %w", l.name, err))
			break
		}
		p, err := a.prefix(v)
		if err != nil {
			a.errs.Add(1)
			errs = append(errs, err)
			continue
		}
		added, err := a.sys.addAddr(l, p, label(l.name, v))
		if err != nil {
			a.errs.Add(1)
			errs = append(errs, fmt.Errorf("netif: add %v to %s: %w", p, l.name, err))
			continue
		}
		if added {
			a.added.Add(1)
			a.log.Info("virtual address added", "vip", p)
		} else {
			a.log.Info("virtual address already present", "vip", p)
		}
		a.holdLocked(v)
		got = append(got, v)
	}
	errs = append(errs, a.announceLocked(ctx, l, got)...)
	a.startBurstLocked(l, got)
	return errors.Join(errs...)
}

// Release stops announcing the addresses and removes them (an address
// already gone is fine, and so is an interface that is gone, since its
// addresses went with it). It does not stop early when ctx is done: an
// address left behind would be a duplicate on the link once another node
// takes it, and each removal is one netlink round trip.
func (a *Announcer) Release(_ context.Context, vips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Announcing stops first, so that an address that cannot be removed
	// is at least not claimed against the node taking it over.
	for _, v := range vips {
		a.unholdLocked(v)
	}
	if a.closed {
		return fmt.Errorf("netif: release on %s: %w", a.ifname, ErrClosed)
	}
	l, err := a.sys.link(a.ifname)
	switch {
	case errors.Is(err, ErrNoInterface):
		a.log.Info("interface gone: no virtual address to remove", "vip", vips)
		return nil
	case err != nil:
		a.errs.Add(1)
		return fmt.Errorf("netif: release: %w", err)
	}
	var errs []error
	for _, v := range vips {
		p, err := a.prefix(v)
		if err != nil {
			a.errs.Add(1)
			errs = append(errs, err)
			continue
		}
		removed, err := a.sys.delAddr(l, p)
		switch {
		case err != nil:
			a.errs.Add(1)
			errs = append(errs, fmt.Errorf("netif: remove %v from %s: %w", p, l.name, err))
		case removed:
			a.removed.Add(1)
			a.log.Info("virtual address removed", "vip", p)
		}
	}
	return errors.Join(errs...)
}

// Announce sends gratuitous ARP or NA again for addresses this Announcer
// holds, as Acquire does; an address it does not hold is not announced
// (that would draw its traffic here) and is reported in the error.
func (a *Announcer) Announce(ctx context.Context, vips []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, err := a.linkLocked("announce")
	if err != nil {
		return err
	}
	var errs []error
	held := make([]netip.Addr, 0, len(vips))
	for _, v := range vips {
		if !slices.Contains(a.held, v) {
			a.errs.Add(1)
			errs = append(errs, fmt.Errorf("netif: announce %v on %s: not held", v, l.name))
			continue
		}
		held = append(held, v)
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(append(errs, fmt.Errorf("netif: announce on %s: %w", l.name, err))...)
	}
	errs = append(errs, a.announceLocked(ctx, l, held)...)
	a.startBurstLocked(l, held)
	return errors.Join(errs...)
}

// Counters returns the totals so far.
func (a *Announcer) Counters() Counters {
	return Counters{
		Added:   a.added.Load(),
		Removed: a.removed.Load(),
		ARPSent: a.arpSent.Load(),
		NASent:  a.naSent.Load(),
		Errors:  a.errs.Load(),
	}
}

// Close stops repeats and refreshes and closes the sockets. It leaves the
// addresses where they are: the vrrp Instance releases them when it
// stops, so close the Announcer after the Instance's Run has returned.
func (a *Announcer) Close() error {
	err := fmt.Errorf("netif: %s: %w", a.ifname, ErrClosed)
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		close(a.quit)
		<-a.done
		err = a.sys.close()
	})
	return err
}

func (a *Announcer) linkLocked(op string) (linkInfo, error) {
	if a.closed {
		return linkInfo{}, fmt.Errorf("netif: %s on %s: %w", op, a.ifname, ErrClosed)
	}
	l, err := a.sys.link(a.ifname)
	if err != nil {
		a.errs.Add(1)
		return linkInfo{}, fmt.Errorf("netif: %s: %w", op, err)
	}
	return l, nil
}

func (a *Announcer) prefix(v netip.Addr) (netip.Prefix, error) {
	if !v.IsValid() || v.Zone() != "" || v.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("netif: virtual address %v: want a plain IPv4 or IPv6 address", v)
	}
	if p, ok := a.prefixes[v]; ok {
		return p, nil
	}
	return netip.PrefixFrom(v, v.BitLen()), nil
}

func label(ifname string, v netip.Addr) string {
	if !v.Is4() || len(ifname)+len(labelSuffix) > maxLabelLen {
		return ""
	}
	return ifname + labelSuffix
}

func (a *Announcer) holdLocked(v netip.Addr) {
	if !slices.Contains(a.held, v) {
		a.held = append(a.held, v)
	}
}

func (a *Announcer) unholdLocked(v netip.Addr) {
	a.held = slices.DeleteFunc(a.held, func(h netip.Addr) bool { return h == v })
	a.burst = slices.DeleteFunc(a.burst, func(h netip.Addr) bool { return h == v })
	if len(a.burst) == 0 {
		a.burstLeft = 0
	}
}

// announceLocked sends one gratuitous ARP or NA for each of vips.
func (a *Announcer) announceLocked(ctx context.Context, l linkInfo, vips []netip.Addr) []error {
	if !l.announce {
		return nil
	}
	var errs []error
	for _, v := range vips {
		var frame []byte
		sent, kind := &a.arpSent, "gratuitous ARP"
		if v.Is4() {
			frame = garpFrame(l.mac, v)
		} else {
			frame = naFrame(l.mac, v, l.router)
			sent, kind = &a.naSent, "unsolicited NA"
		}
		if err := a.sys.send(l, frame); err != nil {
			a.errs.Add(1)
			errs = append(errs, fmt.Errorf("netif: announce %v on %s: %w", v, l.name, err))
			continue
		}
		sent.Add(1)
		if a.log.Enabled(ctx, slog.LevelDebug) {
			a.log.Debug(kind+" sent", "vip", v, "mac", l.mac)
		}
	}
	return errs
}

func (a *Announcer) startBurstLocked(l linkInfo, vips []netip.Addr) {
	if !l.announce || a.repeat <= 1 || len(vips) == 0 {
		return
	}
	for _, v := range vips {
		if !slices.Contains(a.burst, v) {
			a.burst = append(a.burst, v)
		}
	}
	a.burstLeft = a.repeat - 1
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run sends the repeats and refreshes until Close.
func (a *Announcer) run() {
	defer close(a.done)
	repeat := time.NewTimer(time.Hour)
	repeat.Stop()
	defer repeat.Stop()
	var refresh <-chan time.Time
	if a.refresh > 0 {
		t := time.NewTicker(a.refresh)
		defer t.Stop()
		refresh = t.C
	}
	for {
		select {
		case <-a.quit:
			return
		case <-a.kick:
			repeat.Reset(a.interval)
		case <-repeat.C:
			if a.repeatRound() {
				repeat.Reset(a.interval)
			}
		case <-refresh:
			a.refreshRound()
		}
	}
}

// repeatRound sends one round of the current burst and reports whether
// another is due.
func (a *Announcer) repeatRound() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.burstLeft == 0 {
		return false
	}
	a.backgroundLocked(a.burst)
	a.burstLeft--
	if a.burstLeft == 0 {
		a.burst = nil
	}
	return a.burstLeft > 0
}

func (a *Announcer) refreshRound() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || len(a.held) == 0 {
		return
	}
	a.backgroundLocked(a.held)
}

// backgroundLocked announces vips where no caller hears of failures: it
// logs when announcing starts failing and when it works again, not on
// every round.
func (a *Announcer) backgroundLocked(vips []netip.Addr) {
	var errs []error
	if l, err := a.sys.link(a.ifname); err != nil {
		a.errs.Add(1)
		errs = append(errs, fmt.Errorf("netif: announce: %w", err))
	} else {
		errs = a.announceLocked(context.Background(), l, vips)
	}
	switch {
	case len(errs) > 0 && !a.failing:
		a.failing = true
		a.log.Warn("announcing virtual addresses failed", "vip", vips, "err", errors.Join(errs...))
	case len(errs) == 0 && a.failing:
		a.failing = false
		a.log.Info("announcing virtual addresses again", "vip", vips)
	}
}
