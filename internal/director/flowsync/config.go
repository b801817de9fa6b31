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
	for _, p := range s.Peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return nil, fmt.Errorf("flowsync: peer %q: %w", p, err)
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
