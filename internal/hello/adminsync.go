package hello

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// adminState is what the Endpoint announces and hears of runtime admin
// states (see admin.go).
type adminState struct {
	mu      sync.Mutex
	entries []AdminEntry
	peers   map[string]heardTable // by node
}

type heardTable struct {
	AdminTable
	at time.Time // when it arrived, on our clock
}

// SetAdmin replaces the runtime admin states this node announces — all of
// them: every datagram carries the whole table, so a peer that missed one
// or restarted catches up at the next — and sends them at once. At most
// MaxAdminEntries are sent; the newest are kept.
func (e *Endpoint) SetAdmin(entries []AdminEntry) {
	entries = slices.Clone(entries)
	if len(entries) > MaxAdminEntries {
		slices.SortFunc(entries, func(a, b AdminEntry) int { return b.Time.Compare(a.Time) })
		e.opt.Log.Warn("hello: too many runtime admin states to share; the oldest are not sent", "entries", len(entries), "max", MaxAdminEntries)
		entries = entries[:MaxAdminEntries]
	}
	e.admin.mu.Lock()
	e.admin.entries = entries
	e.admin.mu.Unlock()
	e.Kick()
}

// AdminPeers returns the admin-state table last heard from each peer
// within Expiry, by node name.
func (e *Endpoint) AdminPeers() map[string]AdminTable {
	now := time.Now()
	e.admin.mu.Lock()
	defer e.admin.mu.Unlock()
	out := map[string]AdminTable{}
	for node, t := range e.admin.peers {
		if now.Sub(t.at) > Expiry {
			delete(e.admin.peers, node)
			continue
		}
		out[node] = t.AdminTable
	}
	return out
}

// sendAdmin sends this node's admin states to g's peers, if it has any.
func (e *Endpoint) sendAdmin(g *group, buf []byte) []byte {
	e.admin.mu.Lock()
	entries := e.admin.entries
	e.admin.mu.Unlock()
	if len(entries) == 0 {
		return buf
	}
	t := AdminTable{Node: e.opt.Node, Group: g.Name, Time: time.Now(), Entries: entries}
	buf, err := t.Append(buf, g.key)
	if err != nil {
		e.opt.Log.Warn("hello: admin states not sent", "group", g.Name, "error", err)
		return buf
	}
	e.write(g, buf)
	return buf
}

// handleAdmin takes in a peer's admin-state table, checked as a hello is:
// the group's key, its unicast peers, and with a key the clock window and
// replays.
func (e *Endpoint) handleAdmin(b []byte, src netip.Addr, now time.Time) {
	groups := *e.groups.Load()
	t, err := ParseAdmin(b, func(name string) []byte {
		if g := groups[name]; g != nil {
			return g.key
		}
		return nil
	})
	g := groups[t.Group]
	switch {
	case err != nil && g != nil && errors.Is(err, ErrAuth):
		g.dropped[DropAuth].Add(1)
		e.opt.Log.Debug("hello: admin states dropped", "group", g.Name, "from", src, "error", err)
		return
	case err != nil:
		for _, g := range groups {
			g.dropped[DropMalformed].Add(1)
		}
		e.opt.Log.Debug("hello: admin states dropped", "from", src, "error", err)
		return
	case t.Node == e.opt.Node:
		return
	case g == nil:
		return // a group of theirs we do not have; its hellos are counted
	case len(g.Peers) > 0 && !slices.ContainsFunc(g.Peers, func(p netip.AddrPort) bool { return p.Addr().Unmap().WithZone("") == src }):
		g.dropped[DropNotPeer].Add(1)
		return
	}
	if g.key != nil {
		if d := now.Sub(t.Time); d > Window || d < -Window {
			g.dropped[DropStale].Add(1)
			return
		}
		e.mu.Lock()
		k := "admin " + t.Node
		last, ok := g.last[k]
		if !ok || t.Time.After(last) {
			g.last[k] = t.Time
		}
		e.mu.Unlock()
		if ok && !t.Time.After(last) {
			g.dropped[DropStale].Add(1)
			return
		}
	}
	e.admin.mu.Lock()
	if e.admin.peers == nil {
		e.admin.peers = map[string]heardTable{}
	}
	e.admin.peers[t.Node] = heardTable{AdminTable: t, at: now}
	e.admin.mu.Unlock()
	if e.opt.OnAdmin != nil {
		e.opt.OnAdmin(t)
	}
}
