package flowsync

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// Open makes the Syncer the config's director section asks for, with its
// socket bound on director.sync.listen; nil (and no error) when the sync
// is off. The daemon passes the director's program as t and ev and the
// director as r, runs the Syncer's Run and tells it of ring changes
// (RingChanged). A reload that changes the section stops the old Syncer
// (cancel its Run) before opening the new one on the same port, or keeps
// the socket and gives it to the new one (OpenConn).
func Open(d config.Director, node string, t Table, ev Events, r Resolver, log *slog.Logger) (*Syncer, error) {
	if d.Sync.Listen == "" {
		return nil, nil
	}
	c, err := Listen(d.Sync.Listen)
	if err != nil {
		return nil, err
	}
	sy, err := OpenConn(d, node, c, t, ev, r, log)
	if err != nil {
		c.Close()
		return nil, err
	}
	return sy, nil
}

// OpenConn is Open on a socket already bound (to director.sync.listen):
// the Syncer closes c when its Run returns. On an error c is left open.
func OpenConn(d config.Director, node string, c net.PacketConn, t Table, ev Events, r Resolver, log *slog.Logger) (*Syncer, error) {
	s := d.Sync
	opt := Options{Node: node, Conn: c, AuthKey: s.AuthKey, MaxRate: s.MaxRate, FlowTimeout: time.Duration(d.FlowTimeout),
		Table: t, Events: ev, Resolver: r, Log: log}
	if opt.Log != nil {
		opt.Log = opt.Log.With("component", "flowsync")
	}
	self := selfFilter(c)
	for _, p := range s.Peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return nil, fmt.Errorf("flowsync: peer %q: %w", p, err)
		}
		if self(ap) {
			continue
		}
		opt.Peers = append(opt.Peers, ap)
	}
	if len(node) > MaxNode {
		// Datagrams carry at most MaxNode bytes of it; the name only
		// needs to tell the peers apart.
		opt.Node = node[:MaxNode]
	}
	return New(opt)
}

// selfFilter tells which peers are this Syncer itself: the file is the
// same on every node, so the peers it names (by default the HA groups'
// unicast_peers) include this node's own address. Sending to ourselves
// would be harmless, but waiting for our own table (a join, the preempt
// hold) never ends. A peer is us when its port is the one c is bound to
// and its address is one of this host's.
func selfFilter(c net.PacketConn) func(netip.AddrPort) bool {
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok {
		return func(netip.AddrPort) bool { return false }
	}
	local := map[netip.Addr]bool{}
	if bound, ok := netip.AddrFromSlice(ua.IP); ok && !bound.Unmap().IsUnspecified() {
		// Bound to one address: only that one is us.
		local[bound.Unmap()] = true
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil {
				local[pfx.Addr().Unmap()] = true
			}
		}
	}
	return func(p netip.AddrPort) bool {
		return int(p.Port()) == ua.Port && local[p.Addr().Unmap()]
	}
}
