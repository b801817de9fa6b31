package ha

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
)

// Status reports the running groups, sorted by name, for the admin API.
// Safe from any goroutine.
func (m *Manager) Status() []admin.HAGroup {
	out := []admin.HAGroup{}
	groups := m.published.Load()
	if groups == nil {
		return out
	}
	for _, hg := range *groups {
		vs := hg.inst.Status()
		g := admin.HAGroup{
			Name:               hg.name,
			Interface:          hg.cfg.Interface,
			VRID:               hg.cfg.VRID,
			VIPs:               hg.cfg.VIPs,
			State:              strings.ToLower(vs.State.String()),
			Since:              vs.Since,
			Priority:           int(vs.Priority),
			ConfiguredPriority: hg.cfg.Priority[m.nodeName()],
			Preempt:            hg.cfg.PreemptValue(),
			MasterPriority:     int(vs.MasterPriority),
			MasterIntervalMS:   float64(vs.MasterInterval.Microseconds()) / 1000,
			Transitions:        vs.Transitions,
			AdvertsSent:        vs.AdvertsSent,
			AdvertsReceived:    vs.AdvertsReceived,
			SendErrors:         vs.SendErrors,
			VIPsHeld:           vs.VIPsHeld,
			ListenUntil:        vs.ListenUntil,
			ReleasedAt:         vs.ReleasedAt,
			PreemptHeld:        vs.PreemptHeld,
		}
		if vs.PreemptHeld != "" {
			g.PreemptHoldUntil = hg.preemptHoldUntil()
		}
		for _, p := range vs.Peers {
			g.Peers = append(g.Peers, admin.HAPeer{
				Address: p.Addr.String(), Priority: int(p.Priority),
				IntervalMS: float64(p.Interval.Microseconds()) / 1000,
				LastHeard:  p.LastHeard, Adverts: p.Adverts, ConfigHash: p.ConfigHash,
			})
		}
		var hellos []hello.Peer
		if ep := m.helloEP.Load(); ep != nil {
			hellos = ep.Peers(hg.name)
			g.Peers = helloPeers(g.Peers, hellos)
			hs := ep.Stats(hg.name)
			g.HellosSent, g.HelloDropped = hs.Sent, hs.Dropped
		}
		g.Peers = gonePeers(g.Peers, hg.peers.gone(), livePeers(time.Now(), vs.Peers, hellos))
		if vs.Master.IsValid() {
			g.Master = vs.Master.String()
		}
		for r, n := range vs.Dropped {
			if n > 0 {
				if g.Dropped == nil {
					g.Dropped = map[string]uint64{}
				}
				g.Dropped[r.String()] = n
			}
		}
		for _, it := range hg.track.Load().items {
			g.Track = append(g.Track, admin.TrackItem{Kind: it.kind, Name: it.name, OK: it.ok, Weight: it.weight, Detail: it.detail})
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b admin.HAGroup) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// gonePeers marks the peers that were heard and are no longer (not in
// live), adding those the hello has already forgotten, and sorts the list
// by address.
func gonePeers(peers []admin.HAPeer, gone map[netip.Addr]watchedPeer, live []peerSighting) []admin.HAPeer {
	for a, w := range gone {
		if slices.ContainsFunc(live, func(s peerSighting) bool { return s.addr == a && s.at.After(w.goneSince) }) {
			continue // heard again since the watch last looked
		}
		addr := a.String()
		i := slices.IndexFunc(peers, func(p admin.HAPeer) bool { return p.Address == addr })
		if i < 0 {
			peers = append(peers, admin.HAPeer{Address: addr, LastHello: w.lastSeen})
			i = len(peers) - 1
		}
		peers[i].Gone = true
		if peers[i].Node == "" {
			peers[i].Node = w.node
		}
	}
	slices.SortFunc(peers, func(a, b admin.HAPeer) int {
		return netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address))
	})
	return peers
}
