package daemon

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
)

// adminSync shares runtime admin states (drain, disable, enable) with the
// peers of the HA groups, over the hello (hello.AdminTable): the nodes
// share the config, so they share a drain too. Each node announces every
// admin state set on it or taken from a peer; a node takes a peer's entry
// that is newer (by the clock of the node it was set on) than its own for
// that backend. A backend that one node does not have is skipped there.
type adminSync struct {
	mu      sync.Mutex
	entries map[[2]string]hello.AdminEntry // by service, backend
	in      chan hello.AdminTable          // peers' tables, for the Run goroutine
	dropped atomic.Uint64                  // tables the Run goroutine had no room for
	log     *slog.Logger
}

func newAdminSync(log *slog.Logger) *adminSync {
	return &adminSync{entries: map[[2]string]hello.AdminEntry{}, in: make(chan hello.AdminTable, 16), log: log}
}

// receive queues a peer's table for the Run goroutine; called by the
// hello's receiver, it never blocks (a full queue drops: the peer sends
// its whole table again within a second).
func (a *adminSync) receive(t hello.AdminTable) {
	select {
	case a.in <- t:
	default:
		if n := a.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th…
			a.log.Warn("peers' admin states arrive faster than they are applied; dropped (each peer resends its table every second)",
				"from", t.Node, "dropped_total", n)
		}
	}
}

// newer orders entries of one backend: the later time, then the greater
// origin name, so that every node picks the same.
func newer(a, b hello.AdminEntry) bool {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c > 0
	}
	return a.Origin > b.Origin
}

// record keeps e as the backend's latest admin state and returns the
// table to announce.
func (a *adminSync) record(e hello.AdminEntry) []hello.AdminEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries[[2]string{e.Service, e.Backend}] = e
	out := make([]hello.AdminEntry, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y hello.AdminEntry) int {
		return cmp.Or(cmp.Compare(x.Service, y.Service), cmp.Compare(x.Backend, y.Backend))
	})
	return out
}

func (a *adminSync) entry(service, backend string) (hello.AdminEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[[2]string{service, backend}]
	return e, ok
}

// setAdminLocal records a state set through this node's API and
// announces it.
func (d *Daemon) setAdminLocal(service string, b *balancer.Backend, st balancer.AdminState) {
	d.ha.SetAdmin(d.adminSync.record(hello.AdminEntry{
		Service: service, Backend: b.Addr.String(), State: st.String(), Time: time.Now(), Origin: d.nodeName(),
	}))
}

// applyPeerAdmin takes the entries of a peer's table that are newer than
// ours; on the Run goroutine.
func (d *Daemon) applyPeerAdmin(t hello.AdminTable) {
	var table []hello.AdminEntry
	for _, e := range t.Entries {
		if own, ok := d.adminSync.entry(e.Service, e.Backend); ok && !newer(e, own) {
			continue
		}
		st, err := balancer.ParseAdminState(e.State)
		if err != nil {
			continue
		}
		_, b, err := d.lookup(e.Service, e.Backend)
		if err != nil {
			continue // not a backend of ours: the configs differ
		}
		if prev := b.SetAdminState(st); prev != st {
			d.log.Info("backend admin state changed", "service", e.Service, "backend", b.Addr, "state", st, "prev_state", prev,
				"set_on", e.Origin, "from_peer", t.Node)
			d.syncKernel(b)
		}
		if st == balancer.AdminMaint {
			d.evictLater(b, d.evictTargets(b))
		}
		table = d.adminSync.record(e)
	}
	if table != nil {
		d.ha.SetAdmin(table)
	}
}

// adminScopes says, for each backend with a runtime admin state, where it
// was set and, on a node with HA groups, whether it is this node's alone:
// shared when every peer that says hello announces the same entry.
func (d *Daemon) adminScopes(st *admin.Status) {
	var peers map[string]hello.AdminTable
	nodes := map[string]bool{}
	if ep := d.ha.Hello(); ep != nil {
		peers = ep.AdminPeers()
		for _, g := range st.HA {
			for _, p := range g.Peers {
				if p.Node != "" && !p.Gone && p.Hellos > 0 {
					nodes[p.Node] = true
				}
			}
		}
	}
	type pool struct {
		name     string // as SetAdminState names it: SERVICE or SERVICE/ROUTE
		backends []admin.Backend
	}
	var pools []pool
	for i := range st.Services {
		s := &st.Services[i]
		pools = append(pools, pool{s.Name, s.Backends})
		for _, r := range s.Routes {
			pools = append(pools, pool{r.Name, r.Backends}) // named SERVICE/ROUTE
		}
	}
	for _, p := range pools {
		for j := range p.backends {
			b := &p.backends[j]
			e, ok := d.adminSync.entry(p.name, b.Address)
			if !ok {
				continue
			}
			b.AdminSetOn = e.Origin
			if len(st.HA) == 0 {
				continue // no HA peers to share with: nothing to say
			}
			shared := len(nodes) > 0
			for n := range nodes {
				shared = shared && slices.ContainsFunc(peers[n].Entries, func(x hello.AdminEntry) bool {
					return x.Service == e.Service && x.Backend == e.Backend && x.State == e.State && x.Origin == e.Origin && x.Time.Equal(e.Time)
				})
			}
			if !shared {
				b.AdminScope = "node"
			} else {
				b.AdminScope = "peers"
			}
		}
	}
}
