package flowsync

import (
	"context"
	"net/netip"
	"time"
)

// Which entries a Syncer sends (the policy; docs/director.md, "Flow
// sync", says the same for users):
//
//   - A flow the kernel created from the ring is not sent: every
//     director has the same ring for the same config and health, so a
//     peer taking over sends the flow's next packet to the same backend.
//   - A flow created from a persistence entry is sent: the peer's ring
//     would not reproduce it.
//   - A new flow of a service with persistence sends the persistence
//     entry (client under the netmask → backend), so that the client's
//     next connections keep their backend after a fail-over, and so that
//     the peer's copy is refreshed as ours is — at most once per tenth of
//     the group's timeout (persistDue).
//   - When a service's ring changes (RingChanged, called by the control
//     plane after it wrote the new ring), the flow table is scanned and
//     every flow of that service whose slot differs from what the new
//     ring picks for it is sent: exactly the flows that would move after
//     a fail-over.
//   - Every Refresh (a quarter of flow_timeout), the whole table is
//     scanned the same way, so that
//     the peers' copies of those flows, idle on the peers since they
//     carry no packets there, do not time out while the flows live here.
//   - When the new-flow feed is read again after a failure (feed.go), the
//     whole table is scanned the same way at once: the flows created
//     while it was down were not sent when created.
//   - A join is answered with the same scan of the whole table plus every
//     persistence entry younger than its group's timeout, then a done
//     entry.
//   - Scans skip the flows installed from a peer that have seen no packet
//     here since (peersCopy): they are the peer's to send.

// RingChanged tells the Syncer that service id's ring was replaced: the
// flows it pins elsewhere are sent soon. It never blocks.
func (s *Syncer) RingChanged(id uint32) {
	s.scanMu.Lock()
	s.pending[id] = true
	s.scanMu.Unlock()
	select {
	case s.scanKick <- struct{}{}:
	default:
	}
}

// scanAll asks for a scan of the whole table soon. It never blocks.
func (s *Syncer) scanAll() {
	s.scanMu.Lock()
	s.scanFull = true
	s.scanMu.Unlock()
	select {
	case s.scanKick <- struct{}{}:
	default:
	}
}

// newFlow applies the policy to one kernel flow creation. It runs on the
// Events goroutine and never blocks.
func (s *Syncer) newFlow(ev NewFlow) {
	r := s.opt.Resolver
	_, group, ok := r.Service(ev.Flow)
	if !ok || (!ev.Persisted && group == 0) {
		return
	}
	backend, ok := r.Backend(ev.Slot)
	if !ok {
		return
	}
	if ev.Persisted {
		if e, ok := flowEntry(ev.Flow, backend); ok {
			s.Offer(e)
		}
	}
	if group != 0 {
		if g, ok := r.Group(group); ok {
			if e, ok := persistEntry(g, ev.Flow.Src.Addr(), backend); ok && s.persistDue(g, e, time.Now()) {
				s.Offer(e)
			}
		}
	}
}

// persistDue reports whether persistence entry e of g is to be sent at
// now: not when it left less than a tenth of g's timeout ago (at least a
// second), so that a client opening many connections sends it once,
// while the peer's copy still outlives ours by at most that tenth. Only
// the Events goroutine calls it.
func (s *Syncer) persistDue(g Group, e Entry, now time.Time) bool {
	k := sentPersist{group: g.ID, client: e.Client.Addr(), backend: e.Backend}
	every := max(g.Timeout/10, time.Second)
	if at, ok := s.persistSent[k]; ok && now.Sub(at) < every {
		return false
	}
	if len(s.persistSent) >= maxPersistSent {
		for k, at := range s.persistSent {
			if now.Sub(at) >= every {
				delete(s.persistSent, k)
			}
		}
		if len(s.persistSent) >= maxPersistSent {
			clear(s.persistSent)
		}
	}
	s.persistSent[k] = now
	return true
}

type sentPersist struct {
	group           uint32
	client, backend netip.Addr
}

func (s *Syncer) scanLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Refresh)
	defer t.Stop()
	for {
		var only map[uint32]bool
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The whole table; pending rings are covered by it.
			s.forget(time.Now())
			s.scanMu.Lock()
			clear(s.pending)
			s.scanMu.Unlock()
		case <-s.scanKick:
			s.scanMu.Lock()
			only, s.pending = s.pending, map[uint32]bool{}
			full := s.scanFull
			s.scanFull = false
			s.scanMu.Unlock()
			if full {
				only = nil
			} else if len(only) == 0 {
				continue
			}
		}
		if len(s.opt.Peers) == 0 {
			continue
		}
		if err := s.scanFlows(ctx, only, netip.AddrPort{}); err != nil && ctx.Err() == nil {
			s.opt.Log.Warn("flow table scan failed", "error", err)
		}
	}
}

// scanFlows queues, for to (invalid: every peer), the live flows of the
// services in only (nil: all) that their ring no longer picks. The table
// is read first and the entries queued after, so that the kernel map's
// iteration never waits on the rate limit.
func (s *Syncer) scanFlows(ctx context.Context, only map[uint32]bool, to netip.AddrPort) error {
	r := s.opt.Resolver
	var es []Entry
	now := time.Now()
	err := s.opt.Table.Flows(func(f Flow, slot uint32, idle time.Duration) bool {
		if idle >= s.opt.FlowTimeout {
			return true
		}
		id, _, ok := r.Service(f)
		if !ok || (only != nil && !only[id]) {
			return true
		}
		if pick, ok := r.Pick(id, f); ok && pick == slot {
			return true
		}
		if s.peersCopy(f, idle, now) {
			return true
		}
		if backend, ok := r.Backend(slot); ok {
			if e, ok := flowEntry(f, backend); ok {
				es = append(es, e)
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return s.offerAll(ctx, es, to)
}

// learn notes that f was installed from a peer at now.
func (s *Syncer) learn(f Flow, now time.Time) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if _, ok := s.learned[f]; ok || len(s.learned) < maxLearned {
		s.learned[f] = now
	}
}

// peersCopy reports whether f, idle for idle, is a copy installed from a
// peer that no packet has touched here since: such a flow is the peer's
// to send. Sending it back would refresh the peer's entry, whose refresh
// would come back here, and a finished flow would never time out on
// either node. A flow that saw a packet here (this node took it over) is
// this node's from then on.
func (s *Syncer) peersCopy(f Flow, idle time.Duration, now time.Time) bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	at, ok := s.learned[f]
	if !ok {
		return false
	}
	if idle+learnedMargin >= now.Sub(at) {
		return true
	}
	delete(s.learned, f)
	return false
}

// forget drops the learnt flows whose copies have timed out.
func (s *Syncer) forget(now time.Time) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	for f, at := range s.learned {
		if now.Sub(at) > s.opt.FlowTimeout {
			delete(s.learned, f)
		}
	}
}

// dump answers a join from to: the flows a scan finds, the live
// persistence entries, and a done entry.
func (s *Syncer) dump(ctx context.Context, to netip.AddrPort) error {
	if err := s.scanFlows(ctx, nil, to); err != nil {
		return err
	}
	r := s.opt.Resolver
	var es []Entry
	err := s.opt.Table.Persists(func(group uint32, client, backend netip.Addr, age time.Duration) bool {
		g, ok := r.Group(group)
		if !ok || (g.Timeout > 0 && age >= g.Timeout) {
			return true
		}
		if e, ok := persistEntry(g, client, backend); ok {
			es = append(es, e)
		}
		return true
	})
	if err != nil {
		return err
	}
	return s.offerAll(ctx, append(es, Entry{Kind: KindDone}), to)
}

// offerAll queues es for to, waiting for room.
func (s *Syncer) offerAll(ctx context.Context, es []Entry, to netip.AddrPort) error {
	for _, e := range es {
		if err := s.offerWait(ctx, item{e: e, to: to}); err != nil {
			return err
		}
	}
	return nil
}

// flowEntry is the entry of f pinned to backend, if it can travel.
func flowEntry(f Flow, backend netip.Addr) (Entry, bool) {
	e := Entry{Kind: KindFlow, Proto: f.Proto, Client: f.Src, VIP: f.Dst, Backend: backend}
	return e, e.check() == nil
}

// persistEntry is g's entry for client (masked here) leading to backend.
func persistEntry(g Group, client, backend netip.Addr) (Entry, bool) {
	e := Entry{Kind: KindPersist, VIP: netip.AddrPortFrom(g.Key.VIP, 0), Group: g.Key.Hash,
		Client: netip.AddrPortFrom(g.mask(client), 0), Backend: backend}
	return e, e.check() == nil
}
