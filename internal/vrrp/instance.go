package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// eventBuffer transitions wait in Events for a reader; more are
	// dropped and counted, never waited for.
	eventBuffer = 16
	// announceGap limits how often a split-brain winner re-announces: a
	// peer that never yields (one-way link, different VIP set) would
	// otherwise make us flood gratuitous ARP at the advert rate.
	announceGap = time.Second
	// releaseTimeout bounds giving the addresses up at shutdown, when
	// Run's own context is already done.
	releaseTimeout = 5 * time.Second
)

var (
	// ErrNotMaster is Release's answer on a node that is not master.
	ErrNotMaster = errors.New("vrrp: not master")
	// ErrNotRunning is returned by Release once Run has returned.
	ErrNotRunning = errors.New("vrrp: instance not running")
	// ErrNotReleased is Reclaim's answer on a node that no Release holds
	// back.
	ErrNotReleased = errors.New("vrrp: not released")
)

// Instance is one virtual router: the RFC 9568 state machine, driving a
// Conn and an Announcer. Run owns all of its state; the other methods are
// safe from any goroutine and never wait for Run, except Release, which
// waits for its answer.
type Instance struct {
	cfg  Config
	conn Conn
	ann  Announcer
	log  *slog.Logger
	is4  bool

	running atomic.Bool
	state   atomic.Int32
	delta   atomic.Int64
	fault   atomic.Bool
	wake    chan struct{} // tracking changed; capacity 1
	release chan chan error
	reclaim chan chan error
	done    chan struct{} // closed when Run returns
	events  chan Transition

	mu     sync.Mutex
	status Status

	// Owned by the Run goroutine.
	prio           uint8 // effective priority
	masterInterval time.Duration
	heardPrio      uint8 // priority of the master last heard
	down           *time.Timer
	adver          *time.Timer
	preempt        *time.Timer
	preemptPending bool
	// preempting: we discard a live lower-priority master's adverts, so
	// the master-down timer running out means we preempt.
	preempting bool
	masterLeft bool // the master-down timer was cut to the skew by priority 0
	holdUntil  time.Time
	// handingOver: after Release we keep the addresses (and serve) until
	// shortly after the new master's first advert, so that no moment
	// passes without a holder: make before break.
	handingOver   bool
	handoverArmed bool
	successor     netip.Addr // the new master of a hand-over, once heard
	downArms      int        // times the master-down timer was (re)armed
	downDeadline  time.Time  // when the master-down timer is due
	downLate      bool       // the timer was re-armed once for firing late
	handover      *time.Timer
	lastAnnounce  time.Time
	sendFailing   bool
	mismatch      bool
	// listening: a starting backup waits out Config.InitDead for an
	// existing master; heardMaster: a valid advert was heard since Run
	// started (a fault that clears before then listens again).
	listening   bool
	heardMaster bool
}

// New returns an Instance for cfg; Run checks cfg and starts it. log is
// scoped by the caller (component=vrrp, group=NAME); nil discards.
func New(cfg Config, conn Conn, ann Announcer, log *slog.Logger) *Instance {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DownAdverts == 0 {
		cfg.DownAdverts = RFCDownAdverts
	}
	cfg.VIPs = slices.Clone(cfg.VIPs)
	cfg.LocalAddr = cfg.LocalAddr.WithZone("")
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &Instance{
		cfg:     cfg,
		conn:    conn,
		ann:     ann,
		log:     log.With("vrid", cfg.VRID),
		is4:     cfg.LocalAddr.Is4(),
		wake:    make(chan struct{}, 1),
		release: make(chan chan error),
		reclaim: make(chan chan error),
		done:    make(chan struct{}),
		events:  make(chan Transition, eventBuffer),
	}
	in.status = Status{
		VRID:     cfg.VRID,
		State:    Initialize,
		Priority: cfg.Priority,
		Dropped:  make(map[DropReason]uint64),
	}
	return in
}

// State is the current state.
func (in *Instance) State() State { return State(in.state.Load()) }

// Status is a snapshot of the instance's state and counters.
func (in *Instance) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status.clone()
}

// Events delivers state transitions, each once its addresses have been
// acquired or released. It is buffered; when the reader falls behind,
// transitions are dropped (and counted in Status.EventsDropped) rather
// than delaying the state machine. It is never closed.
func (in *Instance) Events() <-chan Transition { return in.events }

// SetPriorityDelta applies tracking: the effective priority becomes the
// configured one plus d, kept within 1-254 (a tracked owner is no longer
// the owner while d is not 0). A master advertises the new priority at
// once, so that a backup that now outranks it (and preempts) need not
// wait for the next interval to know.
func (in *Instance) SetPriorityDelta(d int) {
	in.delta.Store(int64(d))
	in.poke()
}

// SetFault applies tracking: true moves to Fault (a master sends priority
// 0 and releases the addresses; no adverts are sent while in Fault), false
// leaves it for Backup.
func (in *Instance) SetFault(fault bool) {
	in.fault.Store(fault)
	in.poke()
}

func (in *Instance) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Release hands the addresses over gracefully: a master sends priority 0
// (so the best backup takes over after its skew time, a few tens of
// milliseconds, not a master-down interval) and becomes backup, but keeps
// the addresses until it hears the new master's first advert, so that
// there is no moment without a holder. It then does not preempt back
// while that master lives, so that `fulcrum ha release` is not undone by
// the next advert; when that master fails it takes over as usual, and if
// no other node takes over at all it becomes master again after one
// master-down interval. On a node that is not master it returns
// ErrNotMaster.
func (in *Instance) Release(ctx context.Context) error {
	return in.ask(ctx, in.release)
}

// Reclaim undoes a Release: the node no longer holds back from
// preempting, so with Preempt it takes the addresses back from a master
// it outranks (after PreemptDelay, as any preemption); without, it stays
// backup as configured. On a node that no Release holds back it returns
// ErrNotReleased.
func (in *Instance) Reclaim(ctx context.Context) error {
	return in.ask(ctx, in.reclaim)
}

// ask sends a request to Run and waits for its answer.
func (in *Instance) ask(ctx context.Context, ch chan chan error) error {
	reply := make(chan error, 1)
	select {
	case ch <- reply:
	case <-in.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the state machine until ctx is done, then shuts down as RFC
// 9568 section 6.4.3 says: a master sends priority 0 and releases the
// addresses — once a backup has taken over (or two intervals passed with
// none), so that shutting down is a hand-over without a gap. It returns nil then, an error if cfg is invalid or the Conn
// closed under it. It does not close the Conn. An Instance runs once.
func (in *Instance) Run(ctx context.Context) error {
	if err := in.cfg.Validate(); err != nil {
		return err
	}
	if !in.running.CompareAndSwap(false, true) {
		return fmt.Errorf("vrrp: vrid %d: Run called twice", in.cfg.VRID)
	}
	defer close(in.done)
	in.down, in.adver, in.preempt, in.handover = stoppedTimer(), stoppedTimer(), stoppedTimer(), stoppedTimer()
	defer func() {
		in.down.Stop()
		in.adver.Stop()
		in.preempt.Stop()
		in.handover.Stop()
	}()

	in.prio = in.effectivePriority()
	in.masterInterval = in.cfg.Interval
	in.setPriority(in.prio)
	switch {
	case in.fault.Load():
		in.toFault(ctx)
	case in.prio == OwnerPriority:
		in.toMaster(ctx, ReasonOwner)
	default:
		in.toBackup(ctx, ReasonStartup, netip.Addr{})
		in.listenForMaster()
	}

	recv := in.conn.Receive()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			in.shutdown(ctx, recv)
			return nil
		case p, ok := <-recv:
			if !ok {
				in.shutdown(ctx, nil)
				if lastErr != nil && dropReason(lastErr) == DropOther {
					return fmt.Errorf("vrrp: vrid %d: connection closed after %w", in.cfg.VRID, lastErr)
				}
				return fmt.Errorf("vrrp: vrid %d: connection closed", in.cfg.VRID)
			}
			lastErr = p.Err
			in.receive(ctx, p)
		case <-in.down.C:
			// A goroutine that was kept from running can find the timer
			// and the master's advert ready at once, and select picks at
			// random: read what has arrived first, and take over only if
			// none of it re-armed the timer.
			if in.receivedMeanwhile(ctx, recv) {
				continue
			}
			if in.starved(time.Now()) {
				// The timer fired far behind time: this process was not
				// running, so the master's silence may be ours. Listen
				// one more interval before taking over.
				in.log.Warn("master-down timer fired late; listening one more interval", "late", time.Since(in.downDeadline).Round(time.Millisecond))
				in.armDown(in.masterInterval)
				in.downLate = true
				continue
			}
			in.onMasterDown(ctx)
		case <-in.adver.C:
			in.advertise(in.prio)
			in.adver.Reset(in.cfg.Interval)
		case <-in.preempt.C:
			in.onPreemptDelay(ctx)
		case <-in.handover.C:
			if in.handingOver && in.State() == Backup {
				in.handingOver = false
				in.releaseVIPs(ctx)
			}
		case <-in.wake:
			in.onTracking(ctx)
		case reply := <-in.release:
			reply <- in.onRelease(ctx)
		case reply := <-in.reclaim:
			reply <- in.onReclaim()
		}
	}
}

// handoverGrace is how long a released master keeps the addresses after
// the new master's first advert: two advert intervals, time for the new
// master's gratuitous ARP/NA to reach the neighbours.
func handoverGrace(interval time.Duration) time.Duration { return 2 * interval }

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func (in *Instance) effectivePriority() uint8 {
	d := in.delta.Load()
	if d == 0 {
		return in.cfg.Priority
	}
	return uint8(min(max(int64(in.cfg.Priority)+d, 1), OwnerPriority-1))
}

// receive applies RFC 9568 section 7.1's checks that need our
// configuration, then section 6.4's rules for the current state.
func (in *Instance) receive(ctx context.Context, p Packet) {
	a := p.Advert
	src := p.Src.WithZone("")
	switch {
	case p.Err != nil:
		in.drop(dropReason(p.Err), src, p.Err)
		return
	case p.TTL != 255:
		in.drop(DropTTL, src, fmt.Errorf("ttl %d", p.TTL))
		return
	case a.VRID != in.cfg.VRID:
		in.drop(DropVRID, src, fmt.Errorf("vrid %d", a.VRID))
		return
	case !src.IsValid() || src.Is4() != in.is4:
		in.drop(DropFamily, src, errors.New("source of the wrong family"))
		return
	case src == in.cfg.LocalAddr:
		in.drop(DropSelf, src, errors.New("advert from our own address"))
		return
	}
	in.mu.Lock()
	in.status.AdvertsReceived++
	in.status.hearPeer(src, a, p.ConfigHash, time.Now())
	in.mu.Unlock()
	in.checkAddrs(a, src)
	in.heardMaster = true
	if in.listening {
		// Somebody is there: the listen period has done its job, and the
		// usual timers (armed below, or this one when we preempt) apply.
		in.stopListening()
		in.armDown(masterDownInterval(in.masterInterval, in.prio, in.cfg.DownAdverts))
	}

	switch in.State() {
	case Backup:
		if in.handingOver && !in.handoverArmed && a.Priority > 0 {
			// The new master sends this advert just before it takes the
			// addresses and announces them: keep ours a little longer, so
			// that no packet sent to our MAC meanwhile is lost.
			in.handoverArmed, in.successor = true, src
			in.handover.Reset(handoverGrace(in.cfg.Interval))
		}
		in.backupReceive(a, src)
	case Master:
		in.masterReceive(ctx, a, src)
	case Fault:
		// In Fault adverts are heard and counted, and the master's
		// interval learned for when the fault clears; we take no part
		// until then.
		if a.Priority > 0 {
			in.masterInterval = a.MaxAdvertInterval
		}
	}
}

// listenForMaster starts the listen period of a backup that has heard no
// master since it started (Config.InitDead), if it is longer than the
// master-down interval that toBackup armed.
func (in *Instance) listenForMaster() {
	if in.heardMaster {
		return
	}
	d, listening := startupDown(in.cfg, in.prio)
	if !listening {
		return
	}
	in.armDown(d)
	in.listening = true
	in.mu.Lock()
	in.status.ListenUntil = in.downDeadline
	in.mu.Unlock()
	in.log.Info("listening for an existing master before taking over", "initdead", in.cfg.InitDead)
}

func (in *Instance) stopListening() {
	in.listening = false
	in.mu.Lock()
	in.status.ListenUntil = time.Time{}
	in.mu.Unlock()
}

func (in *Instance) backupReceive(a Advert, src netip.Addr) {
	in.heard(src, a)
	if a.Priority == 0 {
		// The master is leaving: whoever has the highest priority (the
		// shortest skew) takes over first.
		in.stopPreemptDelay()
		in.preempting, in.masterLeft = false, true
		in.armDown(skewTime(in.masterInterval, in.prio))
		return
	}
	outranks := in.mayPreempt() && a.Priority < in.prio
	if in.heldBack(outranks) || !outranks {
		in.masterInterval = a.MaxAdvertInterval
		in.stopPreemptDelay()
		in.preempting, in.masterLeft = false, false
		in.armDown(masterDownInterval(in.masterInterval, in.prio, in.cfg.DownAdverts))
		return
	}
	// A live master we outrank.
	if in.cfg.PreemptDelay > 0 {
		in.masterInterval = a.MaxAdvertInterval
		in.armDown(masterDownInterval(in.masterInterval, in.prio, in.cfg.DownAdverts))
		if !in.preemptPending {
			in.preemptPending = true
			in.preempt.Reset(in.cfg.PreemptDelay)
		}
		return
	}
	// RFC 9568: discard, and let the master-down timer run out.
	in.preempting = true
}

func (in *Instance) masterReceive(ctx context.Context, a Advert, src netip.Addr) {
	switch {
	case a.Priority == 0:
		// A master that leaves while we are master (after a split brain,
		// say): make sure the backups hear that we are here.
		in.advertise(in.prio)
		in.adver.Reset(in.cfg.Interval)
	case a.Priority > in.prio || a.Priority == in.prio && src.Compare(in.cfg.LocalAddr) > 0:
		// Two masters (a split brain healing, or a preemption): we yield.
		// One last advert of ours tells the winner that there were two,
		// which it could not otherwise know when its advert came first;
		// the neighbours may have our MAC for the addresses, and the
		// winner answers by announcing them again.
		in.advertise(in.prio)
		in.masterInterval = a.MaxAdvertInterval
		in.heard(src, a)
		// Make before break here too: the winner may not have announced
		// the addresses yet; keep ours for the hand-over grace.
		in.handingOver, in.handoverArmed, in.successor = true, true, src
		in.handover.Reset(handoverGrace(in.cfg.Interval))
		in.toBackup(ctx, ReasonHigherPriority, src)
	default:
		// Another master that should yield to us. Advertise now, so that
		// it yields at once (as keepalived does: "forcing new election"),
		// and announce the addresses again, since neighbours may have
		// learned its MAC for them.
		if now := time.Now(); now.Sub(in.lastAnnounce) >= announceGap {
			in.lastAnnounce = now
			in.log.Info("another master outranked, re-announcing", "peer", src, "peer_priority", a.Priority)
			in.advertise(in.prio)
			in.adver.Reset(in.cfg.Interval)
			err := in.advertising(func() error {
				if ho, ok := in.ann.(HandoverAnnouncer); ok {
					// The other master is alive and will yield: take its
					// connections' packets over as from a released master.
					return ho.AcquireFrom(ctx, in.cfg.VIPs, src)
				}
				return in.ann.Announce(ctx, in.cfg.VIPs)
			})
			if err != nil && ctx.Err() == nil {
				in.log.Error("re-announce failed", "err", err)
			}
		}
	}
}

// armDown (re)starts the master-down timer.
func (in *Instance) armDown(d time.Duration) {
	in.downArms++
	in.downLate = false
	in.downDeadline = time.Now().Add(d)
	in.down.Reset(d)
}

// starved reports whether the master-down timer, firing at now, fired so
// late (half an advert interval or more) that we, not the master, were
// likely the silent one — once per timer: a second late firing in a row
// is taken at its word.
func (in *Instance) starved(now time.Time) bool {
	return !in.downLate && now.Sub(in.downDeadline) >= in.masterInterval/2
}

// receivedMeanwhile processes the packets already waiting in recv, at
// most a bounded number, and reports whether one re-armed the
// master-down timer.
func (in *Instance) receivedMeanwhile(ctx context.Context, recv <-chan Packet) bool {
	arms := in.downArms
	// Let the connection's reader hand over a packet the kernel already
	// has: it may have been kept from running just as we were.
	runtime.Gosched()
	for range 64 {
		select {
		case p, ok := <-recv:
			if !ok {
				return in.downArms != arms // Run sees the close next
			}
			in.receive(ctx, p)
		default:
			return in.downArms != arms
		}
	}
	return in.downArms != arms
}

func (in *Instance) onMasterDown(ctx context.Context) {
	if in.State() != Backup {
		return
	}
	reason := ReasonMasterDown
	switch {
	case in.masterLeft:
		reason = ReasonMasterLeft
	case in.preempting:
		reason = ReasonPreempt
	}
	in.toMaster(ctx, reason)
}

func (in *Instance) onPreemptDelay(ctx context.Context) {
	in.preemptPending = false
	if in.State() == Backup && in.mayPreempt() && in.heardPrio != 0 && in.heardPrio < in.prio && !in.heldBack(true) {
		in.toMaster(ctx, ReasonPreempt)
	}
}

// heldBack asks Config.PreemptHold, when we would preempt the master
// just heard (outranks), and records its answer in the status, logging
// when it changes; it reports whether the preemption is held back.
func (in *Instance) heldBack(outranks bool) bool {
	why := ""
	if outranks && in.cfg.PreemptHold != nil {
		why = in.cfg.PreemptHold()
	}
	in.mu.Lock()
	prev := in.status.PreemptHeld
	in.status.PreemptHeld = why
	in.mu.Unlock()
	switch {
	case why == prev:
	case why == "":
		in.log.Info("preemption no longer held back", "was", prev)
	default:
		in.log.Info("preemption of the live master held back", "reason", why, "master_priority", in.heardPrio)
	}
	return why != ""
}

// clearPreemptHeld forgets a hold on becoming master or entering fault:
// there is no preemption left to hold back.
func (in *Instance) clearPreemptHeld() {
	in.mu.Lock()
	in.status.PreemptHeld = ""
	in.mu.Unlock()
}

func (in *Instance) stopPreemptDelay() {
	in.preempt.Stop()
	in.preemptPending = false
}

// mayPreempt: configured to, and not holding back after a Release.
func (in *Instance) mayPreempt() bool {
	return in.cfg.Preempt && !time.Now().Before(in.holdUntil)
}

func (in *Instance) onTracking(ctx context.Context) {
	if p := in.effectivePriority(); p != in.prio {
		in.log.Info("priority changed", "priority", p, "prev_priority", in.prio)
		in.prio = p
		in.setPriority(p)
		switch in.State() {
		case Master:
			in.advertise(p)
			in.adver.Reset(in.cfg.Interval)
		case Backup:
			if p == OwnerPriority {
				in.toMaster(ctx, ReasonOwner)
			}
		}
	}
	fault := in.fault.Load()
	switch st := in.State(); {
	case fault && st != Fault:
		in.toFault(ctx)
	case !fault && st == Fault:
		// masterInterval is the interval of the master heard while in
		// Fault, or ours.
		if in.prio == OwnerPriority {
			in.toMaster(ctx, ReasonOwner)
		} else {
			in.toBackup(ctx, ReasonFaultCleared, netip.Addr{})
			in.listenForMaster()
		}
	}
}

func (in *Instance) onRelease(ctx context.Context) error {
	if in.State() != Master {
		return ErrNotMaster
	}
	in.advertise(0)
	// Held back from preempting until we are master again (the new master
	// fails): a release is an operator's decision, not undone by the next
	// advert. Time far ahead rather than a flag keeps mayPreempt simple.
	now := time.Now()
	in.holdUntil = now.Add(100 * 365 * 24 * time.Hour)
	in.mu.Lock()
	in.status.HoldUntil, in.status.ReleasedAt = in.holdUntil, now
	in.mu.Unlock()
	in.masterInterval = in.cfg.Interval
	in.handingOver, in.handoverArmed, in.successor = true, false, netip.Addr{}
	in.toBackup(ctx, ReasonRelease, netip.Addr{})
	return nil
}

func (in *Instance) onReclaim() error {
	if in.holdUntil.IsZero() {
		return ErrNotReleased
	}
	in.clearHold()
	in.log.Info("release undone: preempting again as configured", "preempt", in.cfg.Preempt)
	return nil
}

// clearHold ends what a Release holds back.
func (in *Instance) clearHold() {
	in.holdUntil = time.Time{}
	in.mu.Lock()
	in.status.HoldUntil, in.status.ReleasedAt = time.Time{}, time.Time{}
	in.mu.Unlock()
}

func (in *Instance) shutdown(ctx context.Context, recv <-chan Packet) {
	wasMaster := in.State() == Master
	in.down.Stop()
	in.adver.Stop()
	in.stopPreemptDelay()
	if wasMaster {
		in.advertise(0)
	}
	t := in.transition(Initialize, ReasonShutdown, netip.Addr{})
	if wasMaster || in.handingOver {
		// Make before break, as for Release: keep the addresses until a
		// backup has taken them and had time to announce them, so that
		// no connection meanwhile finds nobody holding them.
		if !in.handoverArmed {
			in.successor = in.awaitSuccessor(recv)
		}
		time.Sleep(handoverGrace(in.cfg.Interval))
		in.handingOver = false
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		// A hand-over even when no successor was heard: a backup slowed
		// down past those two intervals (a loaded machine) still takes
		// over, as the successor of our priority 0, and relays our
		// connections' packets to us; without one, they finish here.
		// Released at once, the addresses would strand them either way.
		in.giveUpVIPs(rctx, true)
	}
	in.notify(t)
}

// awaitSuccessor waits for the advert of a backup that took over after our
// priority 0: its skew time, at most one interval, plus delivery. Nobody
// within two intervals means nobody will come (a lone node).
func (in *Instance) awaitSuccessor(recv <-chan Packet) netip.Addr {
	deadline := time.NewTimer(2 * in.cfg.Interval)
	defer deadline.Stop()
	for {
		select {
		case <-deadline.C:
			return netip.Addr{}
		case p, ok := <-recv:
			if !ok {
				return netip.Addr{}
			}
			src := p.Src.WithZone("")
			if p.Err == nil && p.TTL == 255 && p.Advert.VRID == in.cfg.VRID && p.Advert.Priority > 0 && src != in.cfg.LocalAddr {
				return src
			}
		}
	}
}

func (in *Instance) toMaster(ctx context.Context, reason string) {
	in.down.Stop()
	in.stopListening()
	in.stopPreemptDelay()
	in.preempting, in.masterLeft = false, false
	in.masterInterval = in.cfg.Interval
	// Master again (nobody took over, or the new master failed): the
	// addresses are ours, and a past release no longer holds us back.
	in.handingOver = false
	if !in.holdUntil.IsZero() {
		in.clearHold()
	}
	in.clearPreemptHeld()
	prev := in.Status().Master // the master last heard, while we were backup
	t := in.transition(Master, reason, in.cfg.LocalAddr)
	if t != nil && prev != in.cfg.LocalAddr {
		t.PrevMaster = prev
	}
	// RFC 9568 order: the advert first, so that other backups stand down
	// at once, then the addresses and their gratuitous ARP/NA.
	in.advertise(in.prio)
	in.adver.Reset(in.cfg.Interval)
	err := in.advertising(func() error {
		if ho, ok := in.ann.(HandoverAnnouncer); ok && prev.IsValid() && (reason == ReasonMasterLeft || reason == ReasonPreempt) {
			// A planned hand-over: the old master lives on and finishes
			// its connections. (After master_down it is presumed dead.)
			return ho.AcquireFrom(ctx, in.cfg.VIPs, prev)
		}
		return in.ann.Acquire(ctx, in.cfg.VIPs)
	})
	if err != nil {
		if ctx.Err() == nil {
			in.log.Error("acquiring virtual addresses failed", "vip", in.cfg.VIPs, "err", err)
		}
	} else {
		in.setVIPsHeld(len(in.cfg.VIPs))
	}
	in.notify(t)
}

func (in *Instance) toBackup(ctx context.Context, reason string, master netip.Addr) {
	wasMaster := in.State() == Master
	in.adver.Stop()
	in.stopPreemptDelay()
	in.preempting, in.masterLeft = false, false
	in.armDown(masterDownInterval(in.masterInterval, in.prio, in.cfg.DownAdverts))
	t := in.transition(Backup, reason, master)
	if wasMaster && !in.handingOver {
		in.releaseVIPs(ctx)
	}
	in.notify(t)
}

func (in *Instance) toFault(ctx context.Context) {
	wasMaster := in.State() == Master
	in.down.Stop()
	in.stopListening()
	in.adver.Stop()
	in.stopPreemptDelay()
	in.clearPreemptHeld()
	if wasMaster {
		in.advertise(0)
	}
	t := in.transition(Fault, ReasonFault, netip.Addr{})
	if wasMaster || in.handingOver {
		in.handingOver = false
		in.releaseVIPs(ctx)
	}
	in.notify(t)
}

func (in *Instance) releaseVIPs(ctx context.Context) { in.giveUpVIPs(ctx, false) }

// giveUpVIPs releases the addresses: through a HandoverAnnouncer's
// ReleaseTo, which may keep them a while for the connections on them, when
// a successor was heard or handOver is set; at once otherwise.
func (in *Instance) giveUpVIPs(ctx context.Context, handOver bool) {
	next := in.successor
	in.successor = netip.Addr{}
	var err error
	if ho, ok := in.ann.(HandoverAnnouncer); ok && (next.IsValid() || handOver) {
		err = ho.ReleaseTo(ctx, in.cfg.VIPs, next)
	} else {
		err = in.ann.Release(ctx, in.cfg.VIPs)
	}
	if err != nil {
		in.log.Error("releasing virtual addresses failed", "vip", in.cfg.VIPs, "err", err)
		return
	}
	in.setVIPsHeld(0)
}

func (in *Instance) setVIPsHeld(n int) {
	in.mu.Lock()
	in.status.VIPsHeld = n
	in.mu.Unlock()
}

// transition records a state change; notify, called once the addresses
// have been taken or given up, logs it and sends the event, so that an
// Events reader that sees Master finds the addresses in place.
func (in *Instance) transition(to State, reason string, master netip.Addr) *Transition {
	from := in.State()
	if from == to {
		return nil
	}
	now := time.Now()
	in.state.Store(int32(to))
	in.mu.Lock()
	in.status.State = to
	in.status.Since = now
	in.status.Transitions++
	switch to {
	case Master:
		in.status.Master = in.cfg.LocalAddr
		in.status.MasterPriority = in.prio
		in.status.MasterInterval = in.cfg.Interval
	case Backup:
		if master.IsValid() {
			in.status.Master = master
		} else if from == Master {
			in.status.Master = netip.Addr{}
		}
	default:
		in.status.Master = netip.Addr{}
	}
	in.mu.Unlock()
	return &Transition{VRID: in.cfg.VRID, From: from, To: to, Reason: reason, Master: master, At: now}
}

func (in *Instance) notify(t *Transition) {
	if t == nil {
		return
	}
	in.log.Log(context.Background(), transitionLevel(t), "state changed",
		"state", t.To, "prev_state", t.From, "reason", t.Reason, "master", t.Master, "priority", in.prio)
	select {
	case in.events <- *t:
	default:
		in.mu.Lock()
		in.status.EventsDropped++
		in.mu.Unlock()
	}
}

// transitionLevel is Warn for the transitions that mean redundancy was
// lost: a fault (this node can no longer serve) and taking over from a
// master that went silent (it died, or the link between us did); Info for
// the rest, which are planned or restore redundancy.
func transitionLevel(t *Transition) slog.Level {
	if t.To == Fault || t.To == Master && t.Reason == ReasonMasterDown {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// advertising runs fn, an announcer's call made as master, and advertises
// every interval until it returns: the announcer may run programs (nft for
// a hand-over's relay) that take longer than the backups' master-down
// interval on a loaded machine, and a master silent that long is replaced
// by a backup — which then yields again, a flap with the VIPs on two
// nodes. The adverts are sent only while the Run loop waits here.
func (in *Instance) advertising(fn func() error) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(in.cfg.Interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				in.advertise(in.prio)
			}
		}
	}()
	err := fn()
	close(done)
	wg.Wait()
	return err
}

// advertise sends an advert with the given priority. A failed send is
// counted and logged when sending starts failing, not on every interval.
func (in *Instance) advertise(prio uint8) {
	err := in.conn.Send(Advert{
		VRID:              in.cfg.VRID,
		Priority:          prio,
		MaxAdvertInterval: in.cfg.Interval,
		Addrs:             in.cfg.VIPs,
	})
	in.mu.Lock()
	if err != nil {
		in.status.SendErrors++
	} else {
		in.status.AdvertsSent++
	}
	in.mu.Unlock()
	switch {
	case err != nil && !in.sendFailing:
		in.sendFailing = true
		in.log.Warn("sending adverts failed", "err", err)
	case err == nil && in.sendFailing:
		in.sendFailing = false
		in.log.Info("sending adverts again")
	}
}

func (in *Instance) heard(src netip.Addr, a Advert) {
	in.heardPrio = a.Priority
	in.mu.Lock()
	in.status.Master = src
	in.status.MasterPriority = a.Priority
	in.status.MasterInterval = a.MaxAdvertInterval
	in.mu.Unlock()
}

func (in *Instance) setPriority(p uint8) {
	in.mu.Lock()
	in.status.Priority = p
	if in.status.State == Master {
		in.status.MasterPriority = p
	}
	in.mu.Unlock()
}

func (in *Instance) drop(r DropReason, src netip.Addr, err error) {
	in.mu.Lock()
	in.status.Dropped[r]++
	in.mu.Unlock()
	if in.log.Enabled(context.Background(), slog.LevelDebug) {
		in.log.Debug("advert dropped", "reason", r, "src", src, "err", err)
	}
}

// checkAddrs counts adverts whose address list differs from ours and
// warns when that starts (and notes when it ends), not per advert.
func (in *Instance) checkAddrs(a Advert, src netip.Addr) {
	same := len(a.Addrs) == len(in.cfg.VIPs)
	for _, v := range a.Addrs {
		if !same {
			break
		}
		same = slices.Contains(in.cfg.VIPs, v)
	}
	if !same {
		in.mu.Lock()
		in.status.AddrMismatches++
		in.mu.Unlock()
	}
	switch {
	case !same && !in.mismatch:
		in.log.Warn("peer advertises other virtual addresses than ours: check both configs",
			"peer", src, "peer_vips", a.Addrs, "vip", in.cfg.VIPs)
	case same && in.mismatch:
		in.log.Info("peer's virtual addresses match ours again", "peer", src)
	}
	in.mismatch = !same
}
