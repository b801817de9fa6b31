package vrrp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// State is a virtual router's state (RFC 9568 section 6.4, where Master is
// called Active).
type State int

const (
	Initialize State = iota // not running, or shut down
	Backup
	Master
	Fault // tracking says we must not serve: no adverts, no addresses
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "initialize"
	case Backup:
		return "backup"
	case Master:
		return "master"
	case Fault:
		return "fault"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Transition reasons, stable for logs and alerts.
const (
	ReasonStartup        = "startup"         // Initialize → Backup
	ReasonOwner          = "owner"           // priority 255: straight to Master
	ReasonMasterDown     = "master_down"     // no advert for a master-down interval
	ReasonMasterLeft     = "master_left"     // the master sent priority 0
	ReasonPreempt        = "preempt"         // we outrank a live master
	ReasonHigherPriority = "higher_priority" // a master outranks us
	ReasonFault          = "fault"           // SetFault(true)
	ReasonFaultCleared   = "fault_cleared"   // SetFault(false)
	ReasonRelease        = "release"         // Release: graceful hand-over
	ReasonShutdown       = "shutdown"        // Run's context ended
)

// Transition is one state change, as delivered by Instance.Events.
type Transition struct {
	VRID     uint8
	From, To State
	Reason   string // one of the Reason constants
	// Master is the master after the transition: LocalAddr when To is
	// Master, the master last heard when To is Backup, else zero.
	Master netip.Addr
	// PrevMaster, when To is Master, is the master we heard before taking
	// over (with ReasonMasterDown: the one that went silent); zero if
	// none was heard.
	PrevMaster netip.Addr
	At         time.Time
}

// DropReason says why a received packet was not processed.
type DropReason int

const (
	DropTTL      DropReason = iota // TTL or hop limit not 255: not from our link
	DropVRID                       // another virtual router's advert
	DropVersion                    // not VRRPv3 (a VRRPv2 peer, say)
	DropType                       // not an advertisement
	DropLength                     // truncated, or length and address count disagree
	DropChecksum                   // checksum failed
	DropFamily                     // addresses of the wrong family
	DropInterval                   // zero advert interval
	DropAuth                       // missing or bad authentication
	DropReplay                     // authenticated, but replayed or too old
	DropPeer                       // not one of the unicast peers
	DropSelf                       // sent from our own address
	DropOther                      // the socket reported an error
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"ttl", "vrid", "version", "type", "length", "checksum", "family",
	"interval", "auth", "replay", "peer", "self", "other",
}

func (r DropReason) String() string {
	if r >= 0 && r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// MarshalText makes Status.Dropped encode with the reasons' names as keys.
func (r DropReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// dropReason classifies a Packet's error.
func dropReason(err error) DropReason {
	for _, c := range []struct {
		err    error
		reason DropReason
	}{
		{ErrVersion, DropVersion}, {ErrType, DropType}, {ErrLength, DropLength},
		{ErrChecksum, DropChecksum}, {ErrFamily, DropFamily}, {ErrInterval, DropInterval},
		{ErrAuth, DropAuth}, {ErrReplay, DropReplay}, {ErrNotPeer, DropPeer},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return DropOther
}

// Status is a snapshot of an Instance, for the API, metrics and `fulcrum
// status`.
type Status struct {
	VRID        uint8
	State       State
	Since       time.Time // when State was entered; zero before Run
	Transitions uint64
	Priority    uint8 // effective: configured plus the tracking delta
	// Master is us when State is Master, else the master last heard (zero
	// if none yet), with the priority and interval it advertised.
	Master         netip.Addr
	MasterPriority uint8
	MasterInterval time.Duration
	// HoldUntil is when a Release stops holding us back from preempting
	// (far ahead: until we are master again, or Reclaim); ReleasedAt is
	// when that Release was. Both zero when no Release holds us back.
	HoldUntil  time.Time
	ReleasedAt time.Time
	// PreemptHeld is, while Config.PreemptHold keeps us from preempting
	// the live master we outrank, its answer (why); "" otherwise.
	PreemptHeld string
	// ListenUntil is, while a starting backup listens for an existing
	// master (Config.InitDead) and has heard none yet, when it will take
	// over; zero otherwise.
	ListenUntil     time.Time
	AdvertsSent     uint64
	AdvertsReceived uint64 // valid adverts for our VRID
	SendErrors      uint64
	Dropped         map[DropReason]uint64
	// AddrMismatches counts adverts for our VRID that list other
	// addresses than ours: a misconfiguration, logged, but the adverts
	// still count for the election (as RFC 9568 and keepalived do).
	AddrMismatches uint64
	EventsDropped  uint64 // transitions nobody was reading Events for
	// VIPsHeld is how many virtual addresses we hold: all of them once
	// the Announcer acquired them, none once it released them. A failed
	// release leaves the count as it was: the addresses may still be
	// there.
	VIPsHeld int
	// Peers are the other routers whose valid adverts we heard, sorted
	// by address; at most MaxPeers, the one heard least recently making
	// room for a new one.
	Peers []Peer
}

// MaxPeers bounds Status.Peers: a link has a handful of routers per VRID,
// and the list must not grow with whatever a misconfigured host sends.
const MaxPeers = 16

// Peer is another router heard on the link.
type Peer struct {
	Addr netip.Addr
	// Priority and Interval are what its last advert said; priority 0
	// means it was leaving.
	Priority  uint8
	Interval  time.Duration
	LastHeard time.Time
	Adverts   uint64
	// ConfigHash is the hex of the config hash prefix its authenticated
	// adverts carry; "" with plain VRRP.
	ConfigHash string
}

func (s Status) clone() Status {
	s.Dropped = maps.Clone(s.Dropped)
	s.Peers = slices.Clone(s.Peers)
	return s
}

// hearPeer records a valid advert from src in s.Peers.
func (s *Status) hearPeer(src netip.Addr, a Advert, configHash string, now time.Time) {
	i, found := slices.BinarySearchFunc(s.Peers, src, func(p Peer, a netip.Addr) int { return p.Addr.Compare(a) })
	if !found {
		if len(s.Peers) >= MaxPeers {
			oldest := 0
			for j, p := range s.Peers {
				if p.LastHeard.Before(s.Peers[oldest].LastHeard) {
					oldest = j
				}
			}
			s.Peers = slices.Delete(s.Peers, oldest, oldest+1)
			i, _ = slices.BinarySearchFunc(s.Peers, src, func(p Peer, a netip.Addr) int { return p.Addr.Compare(a) })
		}
		s.Peers = slices.Insert(s.Peers, i, Peer{Addr: src})
	}
	p := &s.Peers[i]
	p.Priority, p.Interval, p.LastHeard, p.ConfigHash = a.Priority, a.MaxAdvertInterval, now, configHash
	p.Adverts++
}
