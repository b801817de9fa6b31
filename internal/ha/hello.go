package ha

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/hello"
)

// helloState is the node's hello endpoint (see package hello), shared by
// every HA group; owned by Run, published in helloEP for Status.
type helloState struct {
	ep   *hello.Endpoint
	port int
	node string
}

// prepareHello opens the hello sockets cfg needs, or keeps the running
// ones when the port did not change. A nil endpoint means the hello is
// off (no groups, hello_port 0, or no real sockets in a test).
func (m *Manager) prepareHello(cfg *config.Config) (*hello.Endpoint, error) {
	port := cfg.HA.HelloPort
	if m.opt.Deps.HelloListen == nil || port == 0 || len(cfg.HA.Groups) == 0 {
		return nil, nil
	}
	if m.hello.ep != nil && m.hello.port == port && m.hello.node == cfg.Node.Name {
		return m.hello.ep, nil
	}
	var need4, need6 bool
	for i := range cfg.HA.Groups {
		if cfg.HA.Groups[i].VIPPrefixes()[0].Addr().Is6() {
			need6 = true
		} else {
			need4 = true
		}
	}
	// Both families are opened when they can be, so that a group of the
	// other family added later needs no new socket on a port we hold.
	c4, err4 := m.opt.Deps.HelloListen(false, port)
	c6, err6 := m.opt.Deps.HelloListen(true, port)
	var errs []error
	if need4 && err4 != nil {
		errs = append(errs, err4)
	}
	if need6 && err6 != nil {
		errs = append(errs, err6)
	}
	if len(errs) > 0 {
		for _, c := range []net.PacketConn{c4, c6} {
			if c != nil {
				c.Close()
			}
		}
		return nil, errors.Join(errs...)
	}
	return hello.New(hello.Options{Node: cfg.Node.Name, Conn4: c4, Conn6: c6, Log: m.opt.Log.With("component", "hello"), OnAdmin: m.opt.OnAdmin}), nil
}

// commitHello swaps in ep and gives it the running groups; after
// commitGroups.
func (m *Manager) commitHello(cfg *config.Config, ep *hello.Endpoint) {
	if old := m.hello.ep; old != nil && old != ep {
		old.Close()
	}
	m.hello = helloState{ep: ep, port: cfg.HA.HelloPort, node: cfg.Node.Name}
	m.helloEP.Store(ep)
	if ep == nil {
		return
	}
	if a := m.admin.Load(); a != nil {
		ep.SetAdmin(*a)
	}
	var groups []hello.Group
	for i := range cfg.HA.Groups {
		g := &cfg.HA.Groups[i]
		hg := m.groups[g.Name]
		if hg == nil {
			continue
		}
		hgr := hello.Group{
			Name:      g.Name,
			VRID:      uint8(g.VRID),
			Interface: g.Interface,
			Is6:       hg.vips[0].Addr().Is6(),
			Port:      cfg.HA.HelloPort,
			AuthKey:   hg.authKey,
			State: func() (string, uint8) {
				vs := hg.inst.Status()
				return strings.ToLower(vs.State.String()), vs.Priority
			},
		}
		for _, p := range g.UnicastPeers {
			hgr.Peers = append(hgr.Peers, netip.AddrPortFrom(netip.MustParseAddr(p), uint16(cfg.HA.HelloPort)))
		}
		groups = append(groups, hgr)
	}
	if err := ep.SetGroups(groups); err != nil {
		m.log.Warn("hello: some groups cannot hear their peers' hellos", "error", err)
	}
}

// stopHello closes the endpoint (shutdown).
func (m *Manager) stopHello() {
	if m.hello.ep != nil {
		m.hello.ep.Close()
	}
	m.hello = helloState{}
	m.helloEP.Store(nil)
}

// helloPeers merges the peers heard through hellos into those heard
// through VRRP, by address: a peer heard both ways is one peer.
func helloPeers(peers []admin.HAPeer, heard []hello.Peer) []admin.HAPeer {
	for _, h := range heard {
		addr := h.Addr.String()
		i := slices.IndexFunc(peers, func(p admin.HAPeer) bool { return p.Address == addr })
		if i < 0 {
			peers = append(peers, admin.HAPeer{Address: addr, Priority: int(h.Priority)})
			i = len(peers) - 1
		}
		p := &peers[i]
		p.Node, p.State, p.Hellos, p.LastHello = h.Node, h.State, h.Hellos, h.LastSeen
		if h.LastSeen.After(p.LastHeard) {
			// Its hello is newer than its last advert (a backup that was
			// master once): its priority now is the hello's.
			p.Priority = int(h.Priority)
		}
		if h.ConfigHash != "" {
			p.ConfigHash = h.ConfigHash
		}
	}
	return peers
}
