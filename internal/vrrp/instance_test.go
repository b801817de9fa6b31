package vrrp

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

const iv = 100 * time.Millisecond

// md is the master-down interval of a priority-prio backup on 100ms adverts.
func md(prio uint8) time.Duration { return masterDownInterval(iv, prio, RFCDownAdverts) }

func TestMasterDownInterval(t *testing.T) {
	t.Parallel()
	tests := []struct {
		adver time.Duration
		prio  uint8
		want  time.Duration
	}{
		{iv, 100, 300*time.Millisecond + 60937500*time.Nanosecond},
		{iv, 254, 300*time.Millisecond + 781250*time.Nanosecond},
		{iv, 1, 300*time.Millisecond + 99609375*time.Nanosecond},
		{time.Second, 100, 3*time.Second + 609375*time.Microsecond},
	}
	for _, tt := range tests {
		if got := masterDownInterval(tt.adver, tt.prio, RFCDownAdverts); got != tt.want {
			t.Errorf("masterDownInterval(%v, %d) = %v, want %v", tt.adver, tt.prio, got, tt.want)
		}
	}
}

// TestElection runs one Instance against a scripted peer and checks when
// (if ever) it becomes master, to the nanosecond: synctest's clock only
// moves when every goroutine waits, so timer arithmetic is exact.
func TestElection(t *testing.T) {
	t.Parallel()
	const never = neverMaster
	tests := []struct {
		name    string
		prio    uint8
		preempt bool
		delay   time.Duration
		down    int // Config.DownAdverts
		// initdead is Config.InitDead (with down 2: fulcrum's defaults).
		initdead time.Duration
		// hold is how long Config.PreemptHold holds a preemption back,
		// from the start; forever holds it for good.
		hold time.Duration
		// The peer (10.0.0.2; we are 10.0.0.1) sends peerCount adverts of
		// peerPrio every peerIv from phase after the start, then a
		// priority 0 advert if zeroAfter is set; peerCount 0 is no peer.
		phase     time.Duration
		peerPrio  uint8
		peerIv    time.Duration
		peerCount int
		zeroAfter bool
		// wantMaster is when we become master, from the start.
		wantMaster time.Duration
		wantReason string
	}{
		{name: "no peer", prio: 100, wantMaster: md(100), wantReason: ReasonMasterDown},
		{name: "owner", prio: 255, wantMaster: 0, wantReason: ReasonOwner},
		{name: "owner with a live master", prio: 255, peerPrio: 200, peerIv: iv, peerCount: 100,
			wantMaster: 0, wantReason: ReasonOwner},
		{name: "higher priority peer", prio: 100, preempt: true, peerPrio: 200, peerIv: iv, peerCount: 200,
			wantMaster: never},
		{name: "equal priority peer", prio: 100, preempt: true, peerPrio: 100, peerIv: iv, peerCount: 200,
			wantMaster: never},
		{name: "lower priority peer, preempt", prio: 150, preempt: true, peerPrio: 100, peerIv: iv, peerCount: 100,
			wantMaster: md(150), wantReason: ReasonPreempt},
		{name: "lower priority peer, preempt delay", prio: 150, preempt: true, delay: 2 * time.Second,
			peerPrio: 100, peerIv: iv, peerCount: 100, wantMaster: 2 * time.Second, wantReason: ReasonPreempt},
		{name: "lower priority peer, preempt delay longer than its life", prio: 150, preempt: true, delay: time.Minute,
			peerPrio: 100, peerIv: iv, peerCount: 50, wantMaster: 49*iv + md(150), wantReason: ReasonMasterDown},
		{name: "lower priority peer, no preempt, until it stops", prio: 150, peerPrio: 100, peerIv: iv, peerCount: 50,
			wantMaster: 49*iv + md(150), wantReason: ReasonMasterDown},
		{name: "higher priority peer stops", prio: 100, peerPrio: 200, peerIv: iv, peerCount: 30,
			wantMaster: 29*iv + md(100), wantReason: ReasonMasterDown},
		{name: "two missed adverts", prio: 100, down: 2, peerPrio: 200, peerIv: iv, peerCount: 30,
			wantMaster: 29*iv + masterDownInterval(iv, 100, 2), wantReason: ReasonMasterDown},
		{name: "two missed adverts, no peer", prio: 100, down: 2,
			wantMaster: 2*iv + skewTime(iv, 100), wantReason: ReasonMasterDown},
		{name: "learns the master's interval", prio: 100, peerPrio: 200, peerIv: time.Second, peerCount: 5,
			wantMaster: 4*time.Second + masterDownInterval(time.Second, 100, RFCDownAdverts), wantReason: ReasonMasterDown},
		{name: "peer leaves with priority 0", prio: 100, peerPrio: 200, peerIv: iv, peerCount: 20, zeroAfter: true,
			wantMaster: 20*iv + skewTime(iv, 100), wantReason: ReasonMasterLeft},
		{name: "priority 0 uses the learned interval", prio: 100, peerPrio: 200, peerIv: time.Second, peerCount: 3,
			zeroAfter: true, wantMaster: 3*time.Second + skewTime(time.Second, 100), wantReason: ReasonMasterLeft},

		// A node on 100ms adverts starts next to a live master advertising
		// every second (keepalived's default): listening for InitDead it
		// hears it before it claims the addresses; without, it takes over
		// after its own short master-down interval. The listen period
		// delays only a start with nobody there.
		{name: "1s master, no initdead: the trap", prio: 150, down: 2,
			phase: 700 * time.Millisecond, peerPrio: 100, peerIv: time.Second, peerCount: 19,
			wantMaster: masterDownInterval(iv, 150, 2), wantReason: ReasonMasterDown},
		{name: "1s master, lower priority, no preempt", prio: 150, down: 2, initdead: 2 * time.Second,
			phase: 700 * time.Millisecond, peerPrio: 100, peerIv: time.Second, peerCount: 19, wantMaster: never},
		{name: "1s master, first advert late in initdead", prio: 150, down: 2, initdead: 2 * time.Second,
			phase: 1700 * time.Millisecond, peerPrio: 100, peerIv: time.Second, peerCount: 18, wantMaster: never},
		{name: "1s master, higher priority", prio: 100, preempt: true, down: 2, initdead: 2 * time.Second,
			phase: 900 * time.Millisecond, peerPrio: 200, peerIv: time.Second, peerCount: 19, wantMaster: never},
		{name: "1s master, lower priority, preempt: once heard", prio: 150, preempt: true, down: 2, initdead: 2 * time.Second,
			phase: 700 * time.Millisecond, peerPrio: 100, peerIv: time.Second, peerCount: 19,
			wantMaster: 700*time.Millisecond + masterDownInterval(iv, 150, 2), wantReason: ReasonPreempt},
		{name: "1s master heard in initdead, then dies", prio: 150, down: 2, initdead: 2 * time.Second,
			phase: 700 * time.Millisecond, peerPrio: 100, peerIv: time.Second, peerCount: 3,
			wantMaster: 2700*time.Millisecond + masterDownInterval(time.Second, 150, 2), wantReason: ReasonMasterDown},
		{name: "initdead, nobody there: the cost at cold start", prio: 150, down: 2, initdead: 2 * time.Second,
			wantMaster: 2*time.Second + skewTime(iv, 150), wantReason: ReasonMasterDown},
		{name: "initdead shorter than master-down", prio: 150, down: 2, initdead: 100 * time.Millisecond,
			wantMaster: masterDownInterval(iv, 150, 2), wantReason: ReasonMasterDown},

		// PreemptHold keeps a live lower-priority master in place while
		// it answers (a returning director waiting for the flow tables),
		// and nothing else: no master, a master that dies or leaves.
		{name: "lower priority peer, preempt held", prio: 150, preempt: true, hold: 2 * time.Second,
			peerPrio: 100, peerIv: iv, peerCount: 100, wantMaster: 19*iv + md(150), wantReason: ReasonPreempt},
		{name: "lower priority peer, preempt held for good", prio: 150, preempt: true, hold: forever,
			peerPrio: 100, peerIv: iv, peerCount: 200, wantMaster: never},
		{name: "preempt held, then preempt delay", prio: 150, preempt: true, hold: 2 * time.Second, delay: time.Second,
			peerPrio: 100, peerIv: iv, peerCount: 100, wantMaster: 3 * time.Second, wantReason: ReasonPreempt},
		{name: "preempt held, no peer", prio: 150, preempt: true, hold: forever,
			wantMaster: md(150), wantReason: ReasonMasterDown},
		{name: "preempt held, the master dies", prio: 150, preempt: true, hold: forever,
			peerPrio: 100, peerIv: iv, peerCount: 50, wantMaster: 49*iv + md(150), wantReason: ReasonMasterDown},
		{name: "preempt held, the master leaves", prio: 150, preempt: true, hold: forever,
			peerPrio: 100, peerIv: iv, peerCount: 20, zeroAfter: true, wantMaster: 20*iv + skewTime(iv, 150), wantReason: ReasonMasterLeft},
		{name: "master leaves during initdead", prio: 150, down: 2, initdead: 2 * time.Second,
			phase: 500 * time.Millisecond, peerPrio: 0, peerIv: time.Second, peerCount: 1,
			wantMaster: 500*time.Millisecond + skewTime(iv, 150), wantReason: ReasonMasterLeft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				cfg := testConfig("10.0.0.1", tt.prio)
				cfg.Preempt, cfg.PreemptDelay = tt.preempt, tt.delay
				cfg.DownAdverts, cfg.InitDead = tt.down, tt.initdead
				begin := time.Now()
				if tt.hold > 0 {
					cfg.PreemptHold = func() string {
						if time.Since(begin) < tt.hold {
							return "held"
						}
						return ""
					}
				}
				me := start(t, n, cfg, nil)
				if tt.peerCount > 0 {
					peer := n.conn(t, "10.0.0.2", nil)
					go func() {
						time.Sleep(tt.phase)
						peer.advertise(tt.peerPrio, tt.peerIv, tt.peerCount)
						if tt.zeroAfter {
							time.Sleep(tt.peerIv)
							peer.Send(Advert{VRID: 51, Priority: 0, MaxAdvertInterval: tt.peerIv, Addrs: testVIPs})
						}
					}()
				}
				time.Sleep(20 * time.Second)
				synctest.Wait()
				switch got := checkMaster(t, me, begin, tt.wantMaster, tt.wantReason); {
				case got == nil:
					if s := me.in.Status(); s.Master != netip.MustParseAddr("10.0.0.2") || s.MasterPriority != tt.peerPrio {
						t.Errorf("status master %v priority %d, want 10.0.0.2 priority %d", s.Master, s.MasterPriority, tt.peerPrio)
					}
				default:
					// A master that left or was preempted is alive: a
					// hand-over; one that went silent is presumed dead.
					var wantFrom netip.Addr
					if tt.wantReason == ReasonMasterLeft || tt.wantReason == ReasonPreempt {
						wantFrom = netip.MustParseAddr("10.0.0.2")
					}
					if acq, _ := me.ann.first("acquire"); acq.from != wantFrom {
						t.Errorf("acquired from %v, want %v", acq.from, wantFrom)
					}
				}
				me.stop(t)
			})
		})
	}
}

// forever is a preempt hold that does not end within a test.
const forever = time.Hour

// neverMaster is checkMaster's want for a node that must stay backup.
const neverMaster = time.Duration(-1)

// checkMaster checks when nd first became master, counted from begin: at
// want for reason (holding the addresses), or never (staying backup
// without them). It returns that transition, nil if none.
func checkMaster(t *testing.T, nd *node, begin time.Time, want time.Duration, reason string) *Transition {
	t.Helper()
	var got *Transition
	for _, tr := range drain(nd.in) {
		if tr.To == Master {
			got = &tr
			break
		}
	}
	switch {
	case want == neverMaster && got != nil:
		t.Fatalf("became master at %v (%s), want never", got.At.Sub(begin), got.Reason)
	case want == neverMaster:
		if st := nd.in.State(); st != Backup || nd.ann.holds() {
			t.Fatalf("state %v, holds %v; want backup without the addresses", st, nd.ann.holds())
		}
	case got == nil:
		t.Fatalf("never became master, want master at %v", want)
	default:
		if at := got.At.Sub(begin); at != want {
			t.Errorf("became master at %v, want %v", at, want)
		}
		if got.Reason != reason {
			t.Errorf("reason %q, want %q", got.Reason, reason)
		}
		if !nd.ann.holds() {
			t.Error("master does not hold the addresses")
		}
	}
	return got
}

// TestTwoNodes elects between real Instances on one fake link.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		a, b         uint8 // priorities of 10.0.0.1 and 10.0.0.2
		preempt      bool
		startBAfter  time.Duration
		wantMasterIs string
	}{
		{name: "higher priority wins", a: 200, b: 100, wantMasterIs: "10.0.0.1"},
		// At equal priority a backup accepts any master (RFC 9568 6.4.2);
		// the higher address wins only between two masters (TestSplitBrain).
		{name: "equal priority, the first to take over stays", a: 100, b: 100, startBAfter: 10 * time.Millisecond, wantMasterIs: "10.0.0.1"},
		{name: "late higher priority, no preempt", a: 100, b: 200, startBAfter: 5 * time.Second, wantMasterIs: "10.0.0.1"},
		{name: "late higher priority, preempt", a: 100, b: 200, preempt: true, startBAfter: 5 * time.Second, wantMasterIs: "10.0.0.2"},
		{name: "late equal priority, preempt", a: 100, b: 100, preempt: true, startBAfter: 5 * time.Second, wantMasterIs: "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				ca, cb := testConfig("10.0.0.1", tt.a), testConfig("10.0.0.2", tt.b)
				ca.Preempt, cb.Preempt = tt.preempt, tt.preempt
				a := start(t, n, ca, nil)
				time.Sleep(tt.startBAfter)
				b := start(t, n, cb, nil)
				time.Sleep(10 * time.Second)
				synctest.Wait()
				master, backup := a, b
				if tt.wantMasterIs == "10.0.0.2" {
					master, backup = b, a
				}
				if st := master.in.State(); st != Master {
					t.Errorf("%v: state %v, want master", master.conn.addr, st)
				}
				if st := backup.in.State(); st != Backup {
					t.Errorf("%v: state %v, want backup", backup.conn.addr, st)
				}
				if !master.ann.holds() || backup.ann.holds() {
					t.Errorf("addresses held: master %v, backup %v; want only the master", master.ann.holds(), backup.ann.holds())
				}
				if s := backup.in.Status(); s.Master != master.conn.addr {
					t.Errorf("backup's master %v, want %v", s.Master, master.conn.addr)
				}
				a.stop(t)
				b.stop(t)
			})
		})
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		a := start(t, n, testConfig("10.0.0.1", 200), nil)
		b := start(t, n, testConfig("10.0.0.2", 100), nil)
		time.Sleep(time.Second)
		if st := a.in.State(); st != Master {
			t.Fatalf("state %v, want master", st)
		}
		stopAt := time.Now()
		a.stop(t)
		sent := a.conn.sentSince(stopAt)
		if len(sent) != 1 || sent[0].adv.Priority != 0 {
			t.Fatalf("sent %+v at shutdown, want one priority 0 advert", sent)
		}
		if a.ann.holds() || a.ann.count("release") != 1 {
			t.Errorf("after shutdown: holds %v, %d releases; want released once", a.ann.holds(), a.ann.count("release"))
		}
		if st := a.in.State(); st != Initialize {
			t.Errorf("state after shutdown %v, want initialize", st)
		}
		time.Sleep(time.Second)
		var took *Transition
		for _, tr := range drain(b.in) {
			if tr.To == Master {
				took = &tr
			}
		}
		if took == nil {
			t.Fatal("backup never took over")
		}
		if d, want := took.At.Sub(stopAt), skewTime(iv, 100); d != want || took.Reason != ReasonMasterLeft {
			t.Errorf("backup took over after %v (%s), want %v (%s)", d, took.Reason, want, ReasonMasterLeft)
		}
		// Make before break: the addresses stayed until the successor had
		// them, plus the grace; the successor was told who handed over.
		if rel, _ := a.ann.last("release"); rel.at.Sub(took.At) != handoverGrace(iv) || rel.from != netip.MustParseAddr("10.0.0.2") {
			t.Errorf("released %v after the successor took over, to %v; want the grace %v, to 10.0.0.2", rel.at.Sub(took.At), rel.from, handoverGrace(iv))
		}
		if acq, _ := b.ann.last("acquire"); acq.from != netip.MustParseAddr("10.0.0.1") {
			t.Errorf("successor acquired from %v, want 10.0.0.1 (a hand-over)", acq.from)
		}
		if err := a.in.Release(context.Background()); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Release after Run: %v, want ErrNotRunning", err)
		}
		b.stop(t)
	})
}

// TestSlowAcquireKeepsAdvertising: a master whose announcer takes longer
// than the backups' master-down interval to add the addresses (nft on a
// loaded machine) advertises meanwhile, so that the backup does not take
// over from it.
func TestSlowAcquireKeepsAdvertising(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		a := startWith(t, n, testConfig("10.0.0.1", 200), nil, &fakeAnnouncer{slow: 5 * md(100)})
		b := start(t, n, testConfig("10.0.0.2", 100), nil)
		time.Sleep(10 * md(100))
		if st := a.in.State(); st != Master || !a.ann.holds() {
			t.Fatalf("a: state %v, holds %v; want master holding the addresses", st, a.ann.holds())
		}
		for _, tr := range drain(b.in) {
			if tr.To == Master {
				t.Errorf("b became master (%s) while a was adding the addresses", tr.Reason)
			}
		}
		if sent := len(a.conn.sentSince(time.Time{})); sent < 8 {
			t.Errorf("a sent %d adverts in %v, want one every %v", sent, 10*md(100), iv)
		}
	})
}

// TestShutdownNoSuccessorHeard: a master that hears no successor within
// two intervals of its priority 0 — alone, or beside a backup slowed down
// on a loaded machine that takes over later — still hands the addresses
// over (ReleaseTo), so that a hand-over announcer keeps them for the
// connections in flight instead of stranding them.
func TestShutdownNoSuccessorHeard(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		a := start(t, n, testConfig("10.0.0.1", 200), nil)
		time.Sleep(time.Second)
		if st := a.in.State(); st != Master {
			t.Fatalf("state %v, want master", st)
		}
		stopAt := time.Now()
		a.stop(t)
		rel, ok := a.ann.last("release")
		if !ok || a.ann.count("release") != 1 {
			t.Fatalf("%d releases, want 1", a.ann.count("release"))
		}
		if !rel.handover || rel.from.IsValid() {
			t.Errorf("released with hand-over %v to %v, want a hand-over (ReleaseTo) to nobody heard", rel.handover, rel.from)
		}
		if d, want := rel.at.Sub(stopAt), 2*iv+handoverGrace(iv); d != want {
			t.Errorf("released %v after the stop, want %v (two intervals for a successor, then the grace)", d, want)
		}
	})
}

// TestDrops feeds packets that must be ignored, each of which would make
// us stay backup if it were taken for the master's advert, and checks that
// we become master on time all the same and count each by reason.
func TestDrops(t *testing.T) {
	t.Parallel()
	good := Advert{VRID: 51, Priority: 200, MaxAdvertInterval: iv, Addrs: testVIPs}
	peer := netip.MustParseAddr("10.0.0.2")
	marshal := func(a Advert, src netip.Addr) []byte {
		b, err := a.Marshal(nil, src, GroupIPv4)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v6 := Advert{VRID: 51, Priority: 200, MaxAdvertInterval: iv, Addrs: []netip.Addr{netip.MustParseAddr("fe80::100")}}
	tests := []struct {
		name string
		pkt  func() ([]byte, netip.Addr, int)
		want DropReason
	}{
		{"ttl 254", func() ([]byte, netip.Addr, int) { return marshal(good, peer), peer, 254 }, DropTTL},
		{"ttl 1", func() ([]byte, netip.Addr, int) { return marshal(good, peer), peer, 1 }, DropTTL},
		{"other vrid", func() ([]byte, netip.Addr, int) {
			a := good
			a.VRID = 52
			return marshal(a, peer), peer, 255
		}, DropVRID},
		{"version 2", func() ([]byte, netip.Addr, int) {
			b := marshal(good, peer)
			b[0] = 2<<4 | 1
			return b, peer, 255
		}, DropVersion},
		{"bad checksum", func() ([]byte, netip.Addr, int) {
			b := marshal(good, peer)
			b[7] ^= 1
			return b, peer, 255
		}, DropChecksum},
		{"type 2", func() ([]byte, netip.Addr, int) {
			b := marshal(good, peer)
			b[0] = 3<<4 | 2
			return b, peer, 255
		}, DropType},
		{"truncated", func() ([]byte, netip.Addr, int) { return marshal(good, peer)[:12], peer, 255 }, DropLength},
		{"our own address", func() ([]byte, netip.Addr, int) {
			me := netip.MustParseAddr("10.0.0.1")
			return marshal(good, me), me, 255
		}, DropSelf},
		{"IPv6 on an IPv4 instance", func() ([]byte, netip.Addr, int) {
			src := netip.MustParseAddr("fe80::2")
			b, err := v6.Marshal(nil, src, GroupIPv6)
			if err != nil {
				t.Fatal(err)
			}
			return b, src, 255
		}, DropFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				me := start(t, n, testConfig("10.0.0.1", 100), nil)
				b, src, ttl := tt.pkt()
				begin := time.Now()
				// The real socket hands over what it read; here a
				// foreign-family packet is parsed by the family of its source.
				for range 20 {
					me.conn.net.mu.Lock()
					p := Packet{Src: src, TTL: ttl}
					p.Advert, p.Err = ParseAdvert(b, src, group(src))
					me.conn.in <- p
					me.conn.net.mu.Unlock()
					time.Sleep(iv)
				}
				synctest.Wait()
				s := me.in.Status()
				if s.State != Master || s.Since.Sub(begin) != md(100) {
					t.Errorf("%v since %v, want master since %v", s.State, s.Since.Sub(begin), md(100))
				}
				if got := s.Dropped[tt.want]; got != 20 {
					t.Errorf("dropped %v: %d, want 20 (all: %v)", tt.want, got, s.Dropped)
				}
				if s.AdvertsReceived != 0 {
					t.Errorf("received %d adverts, want 0", s.AdvertsReceived)
				}
				me.stop(t)
			})
		})
	}
}

// TestAuthenticatedForgery: a node with the wrong key, or none, cannot
// hold a backup down, and the drops are counted.
func TestAuthenticatedForgery(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name    string
		peerKey []byte
		want    DropReason
	}{
		{"wrong key", []byte("fedcba9876543210fedcba9876543210"), DropAuth},
		{"no key", nil, DropAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				begin := time.Now()
				me := start(t, n, testConfig("10.0.0.1", 100), key)
				forger := n.conn(t, "10.0.0.2", tt.peerKey)
				go forger.advertise(254, iv, 30)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				s := me.in.Status()
				if s.State != Master || s.Since.Sub(begin) != md(100) {
					t.Errorf("%v since %v, want master since %v", s.State, s.Since.Sub(begin), md(100))
				}
				if s.Dropped[tt.want] != 30 || s.AdvertsReceived != 0 {
					t.Errorf("dropped %v, received %d; want 30 %v drops and nothing received", s.Dropped, s.AdvertsReceived, tt.want)
				}
				me.stop(t)
			})
		})
	}
}

// TestAuthenticatedPair: with the same key two nodes elect normally.
func TestAuthenticatedPair(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		key := []byte("0123456789abcdef0123456789abcdef")
		n := &fakeNet{}
		a := start(t, n, testConfig("10.0.0.1", 100), key)
		b := start(t, n, testConfig("10.0.0.2", 200), key)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if a.in.State() != Backup || b.in.State() != Master {
			t.Errorf("states %v, %v; want backup, master", a.in.State(), b.in.State())
		}
		if s := a.in.Status(); len(s.Dropped) != 0 || s.AdvertsReceived < 90 {
			t.Errorf("backup dropped %v, received %d; want no drops and ~100 adverts", s.Dropped, s.AdvertsReceived)
		}
		a.stop(t)
		b.stop(t)
	})
}

// TestPeerConfigHash: authenticated adverts carry the master's config
// hash to the backup, which lists the master among its peers with it;
// plain adverts carry none.
func TestPeerConfigHash(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		key  []byte
		want string
	}{
		{"authenticated", []byte("0123456789abcdef0123456789abcdef"), "abcdef0123456789"},
		{"plain", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				a := start(t, n, testConfig("10.0.0.1", 100), tt.key)
				b := start(t, n, testConfig("10.0.0.2", 200), tt.key)
				b.conn.SetConfigHash([]byte{0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xff})
				time.Sleep(5 * time.Second)
				synctest.Wait()
				peers := a.in.Status().Peers
				if len(peers) != 1 || peers[0].Addr != netip.MustParseAddr("10.0.0.2") || peers[0].Priority != 200 {
					t.Fatalf("backup's peers: got %+v, want 10.0.0.2 at priority 200", peers)
				}
				if peers[0].ConfigHash != tt.want {
					t.Errorf("peer config hash: got %q, want %q", peers[0].ConfigHash, tt.want)
				}
				if p := b.in.Status().Peers; len(p) != 0 {
					t.Errorf("master's peers: got %+v, want none (backups are silent)", p)
				}
				a.stop(t)
				b.stop(t)
			})
		})
	}
}

// TestSplitBrain partitions two nodes until both are master, heals the
// link and checks that exactly one stays master, at once, and that the
// winner re-announces the addresses.
func TestSplitBrain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		a, b   uint8
		winner string
	}{
		{"higher priority wins", 150, 100, "10.0.0.1"},
		{"equal priority, higher address wins", 100, 100, "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				n.setCut(true)
				a := start(t, n, testConfig("10.0.0.1", tt.a), nil)
				b := start(t, n, testConfig("10.0.0.2", tt.b), nil)
				time.Sleep(2 * time.Second)
				if a.in.State() != Master || b.in.State() != Master {
					t.Fatalf("partitioned: %v, %v; want both master", a.in.State(), b.in.State())
				}
				healed := time.Now()
				n.setCut(false)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				win, lose := a, b
				if tt.winner == "10.0.0.2" {
					win, lose = b, a
				}
				if win.in.State() != Master || lose.in.State() != Backup {
					t.Fatalf("healed: winner %v, loser %v; want master, backup", win.in.State(), lose.in.State())
				}
				if lose.ann.holds() || !win.ann.holds() {
					t.Errorf("addresses held: winner %v, loser %v", win.ann.holds(), lose.ann.holds())
				}
				// The winner announces once more, as taking the loser's
				// connections over (AcquireFrom the loser).
				loser := netip.MustParseAddr("10.0.0.1")
				if tt.winner == "10.0.0.1" {
					loser = netip.MustParseAddr("10.0.0.2")
				}
				if got := win.ann.countFrom("acquire", loser); got != 1 {
					t.Errorf("winner re-acquired from the loser %d times, want once", got)
				}
				if got := lose.ann.count("announce") + lose.ann.countFrom("acquire", win.conn.addr); got != 0 {
					t.Errorf("loser announced %d times, want never", got)
				}
				// The loser yields on the winner's first advert after the heal.
				s := lose.in.Status()
				if d := s.Since.Sub(healed); d > iv {
					t.Errorf("loser yielded %v after the heal, want within one interval", d)
				}
				a.stop(t)
				b.stop(t)
			})
		})
	}
}

func TestPriorityDelta(t *testing.T) {
	t.Parallel()
	t.Run("clamped", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			prio  uint8
			delta int
			want  uint8
		}{
			{100, 0, 100}, {100, -30, 70}, {100, 50, 150}, {100, -1000, 1}, {100, 1000, 254},
			{255, 0, 255}, {255, -10, 245}, {255, 10, 254},
		}
		for _, tt := range tests {
			in := New(testConfig("10.0.0.1", tt.prio), nil, nil, nil)
			in.SetPriorityDelta(tt.delta)
			if got := in.effectivePriority(); got != tt.want {
				t.Errorf("priority %d delta %d: got %d, want %d", tt.prio, tt.delta, got, tt.want)
			}
		}
	})
	t.Run("master lowered below backup", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := &fakeNet{}
			ca, cb := testConfig("10.0.0.1", 150), testConfig("10.0.0.2", 100)
			cb.Preempt = true
			a := start(t, n, ca, nil)
			b := start(t, n, cb, nil)
			time.Sleep(time.Second + iv/2) // between two adverts
			if a.in.State() != Master {
				t.Fatalf("state %v, want master", a.in.State())
			}
			at := time.Now()
			a.in.SetPriorityDelta(-60)
			synctest.Wait()
			sent := a.conn.sentSince(at)
			if len(sent) != 1 || !sent[0].at.Equal(at) || sent[0].adv.Priority != 90 {
				t.Fatalf("sent %+v, want a priority 90 advert at once", sent)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if a.in.State() != Backup || b.in.State() != Master {
				t.Errorf("states %v, %v; want backup, master", a.in.State(), b.in.State())
			}
			if s := a.in.Status(); s.Priority != 90 || s.MasterPriority != 100 {
				t.Errorf("status priority %d, master priority %d; want 90, 100", s.Priority, s.MasterPriority)
			}
			// Back up: a does not preempt (Preempt false) and stays backup.
			a.in.SetPriorityDelta(0)
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if a.in.State() != Backup || a.in.Status().Priority != 150 {
				t.Errorf("restored: %v priority %d, want backup 150", a.in.State(), a.in.Status().Priority)
			}
			a.stop(t)
			b.stop(t)
		})
	})
}

func TestFault(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		ca, cb := testConfig("10.0.0.1", 150), testConfig("10.0.0.2", 100)
		ca.Preempt = true
		a := start(t, n, ca, nil)
		b := start(t, n, cb, nil)
		time.Sleep(time.Second)
		faultAt := time.Now()
		a.in.SetFault(true)
		synctest.Wait()
		if a.in.State() != Fault || a.ann.holds() {
			t.Fatalf("after SetFault(true): %v, holds %v; want fault, released", a.in.State(), a.ann.holds())
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		sent := a.conn.sentSince(faultAt)
		if len(sent) != 1 || sent[0].adv.Priority != 0 {
			t.Errorf("sent %d adverts in fault (first %+v), want only one priority 0", len(sent), sent)
		}
		if b.in.State() != Master {
			t.Fatalf("peer %v, want master", b.in.State())
		}
		if s := b.in.Status(); s.Since.Sub(faultAt) != skewTime(iv, 100) {
			t.Errorf("peer took over after %v, want the skew time %v", s.Since.Sub(faultAt), skewTime(iv, 100))
		}
		if s := a.in.Status(); s.AdvertsReceived == 0 {
			t.Error("in fault, adverts are no longer counted")
		}
		clearAt := time.Now()
		a.in.SetFault(false)
		synctest.Wait()
		if a.in.State() != Backup {
			t.Fatalf("after SetFault(false): %v, want backup", a.in.State())
		}
		// a outranks b and preempts: one master-down interval later.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if a.in.State() != Master || b.in.State() != Backup {
			t.Fatalf("states %v, %v; want master, backup", a.in.State(), b.in.State())
		}
		if d := a.in.Status().Since.Sub(clearAt); d != md(150) {
			t.Errorf("preempted %v after the fault cleared, want %v", d, md(150))
		}
		a.stop(t)
		b.stop(t)
	})
}

// TestFaultBeforeRun: a fault set before Run starts the instance in Fault,
// and a burst of transitions nobody reads is dropped, not waited for.
func TestFaultBeforeRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		conn := n.conn(t, "10.0.0.1", nil)
		ann := &fakeAnnouncer{}
		in := New(testConfig("10.0.0.1", 255), conn, ann, nil)
		in.SetFault(true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- in.Run(ctx) }()
		synctest.Wait()
		if in.State() != Fault || ann.holds() {
			t.Fatalf("%v, holds %v; want fault without the addresses", in.State(), ann.holds())
		}
		for range 2 * eventBuffer {
			in.SetFault(false)
			synctest.Wait()
			in.SetFault(true)
			synctest.Wait()
		}
		s := in.Status()
		if want := uint64(1 + 4*eventBuffer); s.Transitions != want {
			t.Errorf("%d transitions, want %d", s.Transitions, want)
		}
		if want := s.Transitions - eventBuffer; s.EventsDropped != want {
			t.Errorf("%d events dropped, want %d", s.EventsDropped, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestRelease: a released master hands over at once, keeps the addresses
// until the new master's first advert (make before break), and does not
// take them back while that master lives, although it outranks it and
// preempts; it does when that master fails.
func TestRelease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := masterAndBackup(t)
		if err := b.in.Release(context.Background()); !errors.Is(err, ErrNotMaster) {
			t.Errorf("Release on the backup: %v, want ErrNotMaster", err)
		}
		releasedAt := time.Now()
		if err := a.in.Release(context.Background()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if s := a.in.Status(); s.State != Backup || !s.HoldUntil.After(releasedAt.Add(24*time.Hour)) || !a.ann.holds() {
			t.Fatalf("right after Release: %v, hold until +%v, holds %v; want backup, held back, still holding the addresses",
				s.State, s.HoldUntil.Sub(releasedAt), a.ann.holds())
		}
		time.Sleep(skewTime(iv, 100) + time.Millisecond)
		synctest.Wait()
		if b.in.State() != Master || !a.ann.holds() {
			t.Fatalf("after the peer's skew time: peer %v, we hold %v; want master, still holding (grace)", b.in.State(), a.ann.holds())
		}
		time.Sleep(handoverGrace(iv))
		synctest.Wait()
		if a.ann.holds() {
			t.Fatalf("after the hand-over grace: still holding the addresses")
		}
		if rel, _ := a.ann.last("release"); rel.from != netip.MustParseAddr("10.0.0.2") {
			t.Errorf("released to %v, want the new master 10.0.0.2", rel.from)
		}
		if d := b.in.Status().Since.Sub(releasedAt); d != skewTime(iv, 100) {
			t.Errorf("peer took over after %v, want its skew time %v", d, skewTime(iv, 100))
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if a.in.State() != Backup || b.in.State() != Master {
			t.Fatalf("10s after the release: %v, %v; want backup, master", a.in.State(), b.in.State())
		}
		if n := len(drain(a.in)); n != 3 { // startup, master, release
			t.Errorf("%d transitions so far, want 3", n)
		}
		// The new master dies: a takes over and preempts normally again.
		b.stop(t)
		time.Sleep(time.Second)
		synctest.Wait()
		if a.in.State() != Master || !a.in.Status().HoldUntil.IsZero() {
			t.Errorf("after the new master stopped: %v, hold %v; want master and no hold", a.in.State(), a.in.Status().HoldUntil)
		}
		a.stop(t)
	})
}

// TestReleaseNobodyTakesOver: with no peer, a released master keeps its
// addresses throughout and becomes master again after a master-down
// interval.
func TestReleaseNobodyTakesOver(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		a := start(t, n, testConfig("10.0.0.1", 200), nil)
		time.Sleep(time.Second)
		if err := a.in.Release(context.Background()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		for range 10 {
			time.Sleep(md(200) / 10)
			synctest.Wait()
			if !a.ann.holds() {
				t.Fatalf("addresses dropped with nobody to take them over")
			}
		}
		time.Sleep(iv)
		synctest.Wait()
		if a.in.State() != Master {
			t.Errorf("after a master-down interval alone: %v, want master", a.in.State())
		}
		a.stop(t)
	})
}

// TestNoSpuriousTransitions runs a master and a backup for 10,000 advert
// intervals: neither may change state after the election.
func TestNoSpuriousTransitions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		ca, cb := testConfig("10.0.0.1", 101), testConfig("10.0.0.2", 100)
		ca.Preempt, cb.Preempt = true, true
		a := start(t, n, ca, nil)
		b := start(t, n, cb, nil)
		time.Sleep(10_000 * iv)
		synctest.Wait()
		sa, sb := a.in.Status(), b.in.Status()
		if sa.State != Master || sa.Transitions != 2 {
			t.Errorf("master: %v after %d transitions, want master after 2", sa.State, sa.Transitions)
		}
		if sb.State != Backup || sb.Transitions != 1 {
			t.Errorf("backup: %v after %d transitions, want backup after 1", sb.State, sb.Transitions)
		}
		if sb.AdvertsReceived < 9_990 || len(sb.Dropped) != 0 {
			t.Errorf("backup received %d adverts, dropped %v; want ~10,000 and none", sb.AdvertsReceived, sb.Dropped)
		}
		a.stop(t)
		b.stop(t)
	})
}

func TestAddrMismatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		me := start(t, n, testConfig("10.0.0.1", 100), nil)
		peer := n.conn(t, "10.0.0.2", nil)
		go func() {
			for i := range 10 {
				if i > 0 {
					time.Sleep(iv)
				}
				peer.Send(Advert{VRID: 51, Priority: 200, MaxAdvertInterval: iv, Addrs: testVIPs[:1]})
			}
		}()
		time.Sleep(950 * time.Millisecond)
		synctest.Wait()
		s := me.in.Status()
		if s.State != Backup || s.AddrMismatches != 10 {
			t.Errorf("%v with %d mismatches, want backup (the adverts still count) with 10", s.State, s.AddrMismatches)
		}
		me.stop(t)
	})
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	t.Run("invalid config", func(t *testing.T) {
		t.Parallel()
		in := New(Config{}, nil, nil, nil)
		if err := in.Run(context.Background()); err == nil {
			t.Fatal("Run with an empty config succeeded")
		}
	})
	t.Run("conn closed", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := &fakeNet{}
			conn := n.conn(t, "10.0.0.1", nil)
			ann := &fakeAnnouncer{}
			in := New(testConfig("10.0.0.1", 255), conn, ann, nil)
			done := make(chan error)
			go func() { done <- in.Run(context.Background()) }()
			synctest.Wait()
			conn.Close()
			if err := <-done; err == nil {
				t.Error("Run returned nil after its Conn closed")
			}
			if ann.holds() || in.State() != Initialize {
				t.Errorf("after the Conn closed: %v, holds %v; want initialize, released", in.State(), ann.holds())
			}
		})
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			n := &fakeNet{}
			nd := start(t, n, testConfig("10.0.0.1", 100), nil)
			synctest.Wait()
			if err := nd.in.Run(context.Background()); err == nil {
				t.Error("second Run succeeded")
			}
			nd.stop(t)
		})
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := testConfig("10.0.0.1", 100)
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"default interval", func(c *Config) { c.Interval = 0 }, true},
		{"IPv6", func(c *Config) {
			c.VIPs = []netip.Addr{netip.MustParseAddr("2001:db8::1")}
			c.LocalAddr = netip.MustParseAddr("fe80::1")
		}, true},
		{"vrid 0", func(c *Config) { c.VRID = 0 }, false},
		{"priority 0", func(c *Config) { c.Priority = 0 }, false},
		{"interval 15ms", func(c *Config) { c.Interval = 15 * time.Millisecond }, false},
		{"interval too long", func(c *Config) { c.Interval = time.Minute }, false},
		{"negative preempt delay", func(c *Config) { c.PreemptDelay = -time.Second }, false},
		{"two down adverts", func(c *Config) { c.DownAdverts = 2 }, true},
		{"one down advert", func(c *Config) { c.DownAdverts = 1 }, false},
		{"256 down adverts", func(c *Config) { c.DownAdverts = 256 }, false},
		{"no VIPs", func(c *Config) { c.VIPs = nil }, false},
		{"mixed families", func(c *Config) { c.VIPs = append(c.VIPs, netip.MustParseAddr("2001:db8::1")) }, false},
		{"duplicate VIP", func(c *Config) { c.VIPs = append(c.VIPs, c.VIPs[0]) }, false},
		{"no local address", func(c *Config) { c.LocalAddr = netip.Addr{} }, false},
		{"local address of the other family", func(c *Config) { c.LocalAddr = netip.MustParseAddr("fe80::1") }, false},
	}
	for _, tt := range tests {
		c := ok
		c.VIPs = append([]netip.Addr(nil), ok.VIPs...)
		tt.modify(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// TestMasterAdverts: a master advertises every interval, with its
// priority, and at once when another master leaves with priority 0.
func TestMasterAdverts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		begin := time.Now()
		me := start(t, n, testConfig("10.0.0.1", 255), nil)
		peer := n.conn(t, "10.0.0.2", nil)
		time.Sleep(time.Second + iv/2)
		sent := me.conn.sentSince(begin)
		if len(sent) != 11 {
			t.Fatalf("%d adverts in 1.05s, want 11", len(sent))
		}
		for i, s := range sent {
			if at := s.at.Sub(begin); at != time.Duration(i)*iv || s.adv.Priority != 255 || s.adv.MaxAdvertInterval != iv {
				t.Errorf("advert %d: priority %d, interval %v at %v; want 255, %v at %v",
					i, s.adv.Priority, s.adv.MaxAdvertInterval, at, iv, time.Duration(i)*iv)
			}
		}
		at := time.Now()
		peer.Send(Advert{VRID: 51, Priority: 0, MaxAdvertInterval: iv, Addrs: testVIPs})
		synctest.Wait()
		if s := me.conn.sentSince(at); len(s) != 1 || !s[0].at.Equal(at) {
			t.Errorf("after a priority 0 advert: sent %+v, want one advert at once", s)
		}
		// The advert timer restarted from that advert.
		time.Sleep(iv - time.Nanosecond)
		synctest.Wait()
		if s := me.conn.sentSince(at); len(s) != 1 {
			t.Errorf("%d adverts within an interval of the last, want 1", len(s))
		}
		me.stop(t)
	})
}

func TestStrings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		got, want string
	}{
		{Initialize.String(), "initialize"}, {Backup.String(), "backup"}, {Master.String(), "master"},
		{Fault.String(), "fault"}, {State(9).String(), "State(9)"},
		{DropTTL.String(), "ttl"}, {DropOther.String(), "other"}, {DropReason(99).String(), "DropReason(99)"},
		{IPv4.String(), "ipv4"}, {IPv6.String(), "ipv6"}, {Family(5).String(), "Family(5)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	b, err := json.Marshal(Status{Dropped: map[DropReason]uint64{DropChecksum: 2, DropVRID: 1}}.Dropped)
	if err != nil || string(b) != `{"checksum":2,"vrid":1}` {
		t.Errorf("Dropped as JSON: %s, %v", b, err)
	}
	if r := dropReason(errors.New("socket gone")); r != DropOther {
		t.Errorf("dropReason of a foreign error: %v, want other", r)
	}
}

// TestPeersAndVIPsHeld checks what Status says about the routers heard and
// the addresses held, through a failover.
func TestPeersAndVIPsHeld(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		a := start(t, n, testConfig("10.0.0.1", 200), nil)
		b := start(t, n, testConfig("10.0.0.2", 100), nil)
		time.Sleep(2 * time.Second)
		sa, sb := a.in.Status(), b.in.Status()
		if sa.VIPsHeld != len(testVIPs) || sb.VIPsHeld != 0 {
			t.Errorf("VIPs held: master %d, backup %d; want %d and 0", sa.VIPsHeld, sb.VIPsHeld, len(testVIPs))
		}
		if len(sa.Peers) != 0 {
			t.Errorf("master heard %+v, want nobody (the backup is silent)", sa.Peers)
		}
		if len(sb.Peers) != 1 {
			t.Fatalf("backup heard %+v, want the master only", sb.Peers)
		}
		p := sb.Peers[0]
		if p.Addr != a.conn.addr || p.Priority != 200 || p.Interval != iv || p.Adverts != sb.AdvertsReceived || time.Since(p.LastHeard) > iv {
			t.Errorf("backup's peer %+v, want 10.0.0.1 at priority 200 every %v, heard within an interval, %d adverts", p, iv, sb.AdvertsReceived)
		}
		a.stop(t)
		time.Sleep(time.Second)
		sa, sb = a.in.Status(), b.in.Status()
		if sa.VIPsHeld != 0 || sb.VIPsHeld != len(testVIPs) {
			t.Errorf("after failover VIPs held: old master %d, new master %d; want 0 and %d", sa.VIPsHeld, sb.VIPsHeld, len(testVIPs))
		}
		if len(sb.Peers) != 1 || sb.Peers[0].Priority != 0 {
			t.Errorf("new master's peers %+v, want the old master's last advert, priority 0", sb.Peers)
		}
		b.stop(t)
	})
}

func TestPeersBounded(t *testing.T) {
	t.Parallel()
	var s Status
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for i := range MaxPeers + 1 {
		s.hearPeer(netip.AddrFrom4([4]byte{10, 0, 0, byte(100 - i)}), Advert{Priority: 100}, "", t0.Add(time.Duration(i)*time.Second))
	}
	s.hearPeer(netip.MustParseAddr("10.0.0.99"), Advert{Priority: 50}, "", t0.Add(time.Hour))
	if len(s.Peers) != MaxPeers {
		t.Fatalf("got %d peers, want %d", len(s.Peers), MaxPeers)
	}
	if !slices.IsSortedFunc(s.Peers, func(a, b Peer) int { return a.Addr.Compare(b.Addr) }) {
		t.Errorf("peers not sorted: %+v", s.Peers)
	}
	for _, p := range s.Peers {
		switch p.Addr.String() {
		case "10.0.0.100":
			t.Errorf("the peer heard least recently was kept: %+v", p)
		case "10.0.0.99":
			if p.Priority != 50 || p.Adverts != 2 {
				t.Errorf("peer heard twice: %+v, want priority 50 and 2 adverts", p)
			}
		}
	}
}

// TestStarvedTimer: a master-down timer that fires half an interval or
// more behind time is forgiven once — this process was not running, the
// master may well have been — and taken at its word the next time.
func TestStarvedTimer(t *testing.T) {
	in := New(testConfig("10.0.0.1", 100), nil, nil, nil)
	in.down = stoppedTimer()
	in.masterInterval = iv
	in.armDown(time.Hour)
	due := in.downDeadline
	if in.starved(due.Add(iv/2 - time.Millisecond)) {
		t.Error("a timer less than half an interval late counted as starved")
	}
	if !in.starved(due.Add(iv / 2)) {
		t.Error("a timer half an interval late not counted as starved")
	}
	in.downLate = true // re-armed once already
	if in.starved(due.Add(time.Second)) {
		t.Error("a second late firing in a row forgiven too")
	}
	in.armDown(time.Hour) // an advert re-arms it: forgiveness again
	if !in.starved(in.downDeadline.Add(time.Second)) {
		t.Error("after an advert re-armed the timer, a late firing not forgiven")
	}
	in.down.Stop()
}

// masterAndBackup runs 10.0.0.1 at priority 200 and 10.0.0.2 at 100,
// both preempting, for a second: a is master, b backup.
func masterAndBackup(t *testing.T) (a, b *node) {
	t.Helper()
	n := &fakeNet{}
	ca, cb := testConfig("10.0.0.1", 200), testConfig("10.0.0.2", 100)
	ca.Preempt, cb.Preempt = true, true
	a = start(t, n, ca, nil)
	b = start(t, n, cb, nil)
	time.Sleep(time.Second)
	return a, b
}

// TestReclaim: Reclaim undoes a Release: the released node, which
// outranks the new master and preempts, takes the addresses back one
// master-down interval later; a node no Release holds back answers
// ErrNotReleased.
func TestReclaim(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, b := masterAndBackup(t)
		if err := a.in.Reclaim(context.Background()); !errors.Is(err, ErrNotReleased) {
			t.Errorf("Reclaim before any release: %v, want ErrNotReleased", err)
		}
		releasedAt := time.Now()
		if err := a.in.Release(context.Background()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if s := a.in.Status(); s.State != Backup || !s.ReleasedAt.Equal(releasedAt) || b.in.State() != Master {
			t.Fatalf("5s after the release: %v released at %v, peer %v; want backup released at %v, peer master",
				s.State, s.ReleasedAt, b.in.State(), releasedAt)
		}
		if err := b.in.Reclaim(context.Background()); !errors.Is(err, ErrNotReleased) {
			t.Errorf("Reclaim on the new master: %v, want ErrNotReleased", err)
		}
		drain(a.in)
		begin := time.Now()
		if err := a.in.Reclaim(context.Background()); err != nil {
			t.Fatalf("Reclaim: %v", err)
		}
		if s := a.in.Status(); !s.ReleasedAt.IsZero() || !s.HoldUntil.IsZero() {
			t.Errorf("after Reclaim: released at %v, hold until %v; want both zero", s.ReleasedAt, s.HoldUntil)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		// It preempts as configured: the next advert is discarded and the
		// master-down timer it last armed runs out.
		if got := checkMaster(t, a, begin, md(200)-begin.Sub(lastAdvert(b, begin)), ReasonPreempt); got == nil {
			t.Fatal("not master after Reclaim")
		}
		if b.in.State() != Backup {
			t.Errorf("the peer: %v, want backup", b.in.State())
		}
		if err := a.in.Reclaim(context.Background()); !errors.Is(err, ErrNotReleased) {
			t.Errorf("Reclaim once master again: %v, want ErrNotReleased", err)
		}
		a.stop(t)
		b.stop(t)
	})
}

// lastAdvert is when nd last sent an advert before t.
func lastAdvert(nd *node, t time.Time) time.Time {
	nd.conn.mu.Lock()
	defer nd.conn.mu.Unlock()
	var last time.Time
	for _, s := range nd.conn.sent {
		if s.at.Before(t) {
			last = s.at
		}
	}
	return last
}
