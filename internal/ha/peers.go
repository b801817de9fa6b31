package ha

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/hello"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// peerWatchEvery is how often a group looks at which peers it still hears.
const peerWatchEvery = 250 * time.Millisecond

// peerWatch remembers the peers a group has heard, so that one that falls
// silent is reported gone — in the log, at Warn, and in status — instead
// of being forgotten (the hello forgets a peer after hello.Expiry).
//
// A peer that says hello is gone when its hellos stop (and no advert of
// it is fresh). VRRP alone cannot tell: only the master advertises, so a
// peer heard only by its adverts (keepalived, hello_port 0) falls silent
// whenever it becomes backup; it is gone only when this node took over
// from it because it went silent (lost).
type peerWatch struct {
	mu    sync.Mutex
	peers map[netip.Addr]*watchedPeer
}

type watchedPeer struct {
	node      string
	lastSeen  time.Time
	hello     bool      // it has said hello: its silence means gone
	gone      bool      // since goneSince; a sighting after that is its return
	goneSince time.Time // when it was found gone
}

// peerSighting is one peer heard recently, by hello or by advert.
type peerSighting struct {
	addr  netip.Addr
	node  string // "" when heard by VRRP alone
	at    time.Time
	hello bool
}

// livePeers lists the peers heard recently: by hello within hello.Expiry
// (what Endpoint.Peers returns), or by an advert of a priority above 0
// within three of its intervals.
func livePeers(now time.Time, adverts []vrrp.Peer, hellos []hello.Peer) []peerSighting {
	var out []peerSighting
	for _, p := range hellos {
		out = append(out, peerSighting{addr: p.Addr, node: p.Node, at: p.LastSeen, hello: true})
	}
	for _, p := range adverts {
		if p.Priority == 0 || now.Sub(p.LastHeard) > 3*p.Interval {
			continue
		}
		if i := slices.IndexFunc(out, func(s peerSighting) bool { return s.addr == p.Addr }); i >= 0 {
			out[i].at = later(out[i].at, p.LastHeard)
			continue
		}
		out = append(out, peerSighting{addr: p.Addr, at: p.LastHeard})
	}
	return out
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// observe takes the peers heard recently, at now, and logs each change: a
// new peer or one back at Info, one gone at Warn (saying whether any peer
// is left).
func (w *peerWatch) observe(now time.Time, live []peerSighting, group string, log *slog.Logger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	heard := map[netip.Addr]bool{}
	for _, s := range live {
		p := w.peers[s.addr]
		switch {
		case p == nil:
			p = &watchedPeer{}
			w.peers[s.addr] = p
			log.Info("ha peer heard", "group", group, "peer", s.addr, "node", s.node)
		case p.gone && !s.at.After(p.goneSince):
			continue // what was heard before it went (a hello not yet expired)
		case p.gone:
			p.gone = false
			log.Info("ha peer back", "group", group, "peer", s.addr, "node", cmp.Or(s.node, p.node),
				"silent", s.at.Sub(p.lastSeen).Round(100*time.Millisecond))
		}
		heard[s.addr] = true
		p.lastSeen = later(p.lastSeen, s.at)
		p.hello = p.hello || s.hello
		p.node = cmp.Or(s.node, p.node)
	}
	for _, a := range sortedAddrs(w.peers) {
		if p := w.peers[a]; !heard[a] && !p.gone && p.hello {
			w.markGone(now, a, p, len(heard), group, log)
		}
	}
}

// lost marks addr gone at now: this node took over from it when it went
// silent (vrrp.ReasonMasterDown).
func (w *peerWatch) lost(now time.Time, addr netip.Addr, lastSeen time.Time, group string, log *slog.Logger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.init()
	p := w.peers[addr]
	if p == nil {
		p = &watchedPeer{}
		w.peers[addr] = p
	}
	if p.gone {
		return
	}
	p.lastSeen = later(p.lastSeen, lastSeen)
	left := 0
	for a, q := range w.peers {
		if a != addr && !q.gone {
			left++
		}
	}
	w.markGone(now, addr, p, left, group, log)
}

func (w *peerWatch) markGone(now time.Time, a netip.Addr, p *watchedPeer, left int, group string, log *slog.Logger) {
	p.gone, p.goneSince = true, now
	if left == 0 {
		log.Warn("ha peer gone: no other peer heard, no redundancy", "group", group, "peer", a, "node", p.node, "last_seen", p.lastSeen)
	} else {
		log.Warn("ha peer gone", "group", group, "peer", a, "node", p.node, "last_seen", p.lastSeen, "peers_left", left)
	}
}

func (w *peerWatch) init() {
	if w.peers == nil {
		w.peers = map[netip.Addr]*watchedPeer{}
	}
}

// gone lists the peers that were heard and no longer are.
func (w *peerWatch) gone() map[netip.Addr]watchedPeer {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[netip.Addr]watchedPeer{}
	for a, p := range w.peers {
		if p.gone {
			out[a] = *p
		}
	}
	return out
}

func sortedAddrs(m map[netip.Addr]*watchedPeer) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// watchPeers looks at hg's peers every peerWatchEvery until ctx is done.
func (m *Manager) watchPeers(ctx context.Context, hg *group) {
	tick := time.NewTicker(peerWatchEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hg.peers.observe(time.Now(), m.livePeers(hg), hg.name, m.log)
	}
}

// livePeers is what hg hears now.
func (m *Manager) livePeers(hg *group) []peerSighting {
	var hellos []hello.Peer
	if ep := m.helloEP.Load(); ep != nil {
		hellos = ep.Peers(hg.name)
	}
	return livePeers(time.Now(), hg.inst.Status().Peers, hellos)
}

// masterLost marks the master hg took over from for its silence gone.
func (m *Manager) masterLost(hg *group, tr vrrp.Transition) {
	if tr.To != vrrp.Master || tr.Reason != vrrp.ReasonMasterDown || !tr.PrevMaster.IsValid() {
		return
	}
	var last time.Time
	for _, p := range hg.inst.Status().Peers {
		if p.Addr == tr.PrevMaster {
			last = p.LastHeard
		}
	}
	hg.peers.lost(tr.At, tr.PrevMaster, last, hg.name, m.log)
}
