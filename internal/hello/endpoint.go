package hello

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Multicast groups hellos go to when a group has no unicast peers: VRRP's
// own, which every node of the group listens on anyway.
var (
	Multicast4 = netip.MustParseAddr("224.0.0.18")
	Multicast6 = netip.MustParseAddr("ff02::12")
)

const (
	// Interval is how often a node says hello.
	Interval = time.Second
	// Expiry is how long a silent peer is remembered.
	Expiry = 5 * time.Second
	// Window bounds how far an authenticated hello's clock may be from
	// ours: older ones are replays.
	Window = 30 * time.Second
)

// Group is one HA group's hello.
type Group struct {
	Name      string
	VRID      uint8
	Interface string
	// Is6 selects the family: hellos go over the udp6 socket.
	Is6 bool
	// Peers are the unicast destinations; empty: the family's multicast
	// group on Interface, at Port. A group with peers hears only them.
	Peers []netip.AddrPort
	Port  int
	// AuthKey is the group's auth_key_file secret; nil: no MAC.
	AuthKey []byte
	// State reports the group's VRRP state and effective priority at
	// the time of each hello.
	State func() (state string, priority uint8)
}

// Peer is the last hello of one peer.
type Peer struct {
	Node       string
	Addr       netip.Addr
	ConfigHash string
	State      string
	Priority   uint8
	LastSeen   time.Time
	Hellos     uint64
}

// Options configures an Endpoint.
type Options struct {
	// Node is this node's name: hellos carrying it are our own.
	Node string
	// Conn4 and Conn6 are the bound sockets of each family (nil: that
	// family is off); the Endpoint owns and closes them.
	Conn4, Conn6 net.PacketConn
	Log          *slog.Logger
	// InterfaceByName finds a group's interface (for multicast); default
	// net.InterfaceByName. Tests whose sockets live in another network
	// namespace look it up there.
	InterfaceByName func(string) (*net.Interface, error)
	// OnAdmin receives each peer's admin-state table (see admin.go), from
	// the receiving goroutine; nil ignores them.
	OnAdmin func(AdminTable)
}

// Endpoint sends this node's hellos for every group and keeps its peers'.
type Endpoint struct {
	opt    Options
	groups atomic.Pointer[map[string]*group]
	hash   atomic.Pointer[string]
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex // joins, and each group's peers
	joined map[string]bool

	admin adminState
}

type group struct {
	Group
	key   []byte // derived from AuthKey
	ident string
	// state replaces Group.State, which SetGroups may swap while a hello
	// is being sent.
	state atomic.Pointer[func() (string, uint8)]

	peers   map[netip.Addr]*Peer
	last    map[string]time.Time // newest authenticated time per node
	dropped [dropReasons]atomic.Uint64
	sent    atomic.Uint64
}

// Drop reasons, counted per group. A datagram that is no hello at all
// (DropMalformed), or a hello for a group this node does not have
// (DropUnknownGroup), names none of ours: every group of the family whose
// socket received it counts it, since they share the port.
const (
	DropAuth = iota
	DropStale
	DropNotPeer
	DropVRID
	DropMalformed
	DropUnknownGroup
	dropReasons
)

var dropNames = [dropReasons]string{"auth", "stale", "not_peer", "vrid", "malformed", "unknown_group"}

// New starts an Endpoint on opt's sockets with no groups yet.
func New(opt Options) *Endpoint {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.InterfaceByName == nil {
		opt.InterfaceByName = net.InterfaceByName
	}
	e := &Endpoint{opt: opt, kick: make(chan struct{}, 1), done: make(chan struct{}), joined: map[string]bool{}}
	e.groups.Store(&map[string]*group{})
	for _, c := range []net.PacketConn{opt.Conn4, opt.Conn6} {
		if c == nil {
			continue
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.receive(c)
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.send()
	}()
	return e
}

// Listen opens the socket of one family for the hello port on every
// address, with multicast kept on the link and our own not looped back.
func Listen(is6 bool, port int) (net.PacketConn, error) {
	network, addr := "udp4", fmt.Sprintf("0.0.0.0:%d", port)
	if is6 {
		network, addr = "udp6", fmt.Sprintf("[::]:%d", port)
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if is6 {
		p := ipv6.NewPacketConn(c)
		err = errors.Join(p.SetMulticastLoopback(false), p.SetMulticastHopLimit(1))
	} else {
		p := ipv4.NewPacketConn(c)
		err = errors.Join(p.SetMulticastLoopback(false), p.SetMulticastTTL(1))
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("hello: %s: %w", addr, err)
	}
	return c, nil
}

// SetGroups replaces the groups. A group whose settings did not change
// keeps the peers it heard. Multicast groups are joined on their
// interface; a failed join is returned (the others still apply).
func (e *Endpoint) SetGroups(gs []Group) error {
	old := *e.groups.Load()
	next := make(map[string]*group, len(gs))
	var errs []error
	for _, g := range gs {
		ident := fmt.Sprint(g.VRID, g.Interface, g.Is6, g.Peers, g.Port, string(g.AuthKey))
		if o := old[g.Name]; o != nil && o.ident == ident {
			o.state.Store(&g.State)
			next[g.Name] = o
			continue
		}
		ng := &group{Group: g, ident: ident, peers: map[netip.Addr]*Peer{}, last: map[string]time.Time{}}
		ng.state.Store(&g.State)
		if g.AuthKey != nil {
			ng.key = Key(g.AuthKey)
		}
		next[g.Name] = ng
		if len(g.Peers) == 0 {
			if err := e.join(g); err != nil {
				errs = append(errs, fmt.Errorf("hello: group %s: %w", g.Name, err))
			}
		}
	}
	e.groups.Store(&next)
	e.Kick()
	return errors.Join(errs...)
}

// join joins the family's multicast group on g's interface, once.
func (e *Endpoint) join(g Group) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := fmt.Sprint(g.Is6, g.Interface)
	if e.joined[k] {
		return nil
	}
	ifi, err := e.opt.InterfaceByName(g.Interface)
	if err != nil {
		return err
	}
	if g.Is6 {
		if e.opt.Conn6 == nil {
			return errors.New("no IPv6 socket")
		}
		err = ipv6.NewPacketConn(e.opt.Conn6).JoinGroup(ifi, &net.UDPAddr{IP: Multicast6.AsSlice()})
	} else {
		if e.opt.Conn4 == nil {
			return errors.New("no IPv4 socket")
		}
		err = ipv4.NewPacketConn(e.opt.Conn4).JoinGroup(ifi, &net.UDPAddr{IP: Multicast4.AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("joining the multicast group on %s: %w", g.Interface, err)
	}
	e.joined[k] = true
	return nil
}

// SetConfigHash sets the hash announced from now on (hex; only its first
// 2*HashLen digits travel) and says hello at once.
func (e *Endpoint) SetConfigHash(h string) {
	if len(h) > 2*HashLen {
		h = h[:2*HashLen]
	}
	e.hash.Store(&h)
	e.Kick()
}

// Kick sends every group's hello now rather than at the next tick.
func (e *Endpoint) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Close stops the Endpoint and closes its sockets.
func (e *Endpoint) Close() error {
	close(e.done)
	for _, c := range []net.PacketConn{e.opt.Conn4, e.opt.Conn6} {
		if c != nil {
			c.Close()
		}
	}
	e.wg.Wait()
	return nil
}

// Peers lists the peers of group heard within Expiry, by address; it
// forgets older ones.
func (e *Endpoint) Peers(group string) []Peer {
	g := (*e.groups.Load())[group]
	if g == nil {
		return nil
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Peer, 0, len(g.peers))
	for a, p := range g.peers {
		if now.Sub(p.LastSeen) > Expiry {
			delete(g.peers, a)
			continue
		}
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Stats are a group's hello counters.
type Stats struct {
	Sent    uint64
	Dropped map[string]uint64 // by reason, only those above zero
}

// Stats reports group's counters.
func (e *Endpoint) Stats(group string) Stats {
	g := (*e.groups.Load())[group]
	if g == nil {
		return Stats{}
	}
	s := Stats{Sent: g.sent.Load()}
	for i := range g.dropped {
		if n := g.dropped[i].Load(); n > 0 {
			if s.Dropped == nil {
				s.Dropped = map[string]uint64{}
			}
			s.Dropped[dropNames[i]] = n
		}
	}
	return s
}

func (e *Endpoint) send() {
	t := time.NewTicker(Interval)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		case <-e.kick:
		}
		hash := ""
		if h := e.hash.Load(); h != nil {
			hash = *h
		}
		for _, g := range *e.groups.Load() {
			buf = e.sendGroup(g, hash, buf[:0])
			buf = e.sendAdmin(g, buf[:0])
		}
	}
}

func (e *Endpoint) sendGroup(g *group, hash string, buf []byte) []byte {
	m := Message{Node: e.opt.Node, Group: g.Name, VRID: g.VRID, State: "initialize", Time: time.Now(), ConfigHash: hash}
	if f := *g.state.Load(); f != nil {
		m.State, m.Priority = f()
	}
	buf, err := m.Append(buf, g.key)
	if err != nil {
		e.opt.Log.Warn("hello not sent", "group", g.Name, "error", err)
		return buf
	}
	g.sent.Add(uint64(e.write(g, buf)))
	return buf
}

// write sends buf to g's peers, or to its multicast group on its
// interface, and returns how many datagrams left.
func (e *Endpoint) write(g *group, buf []byte) int {
	c := e.opt.Conn4
	if g.Is6 {
		c = e.opt.Conn6
	}
	if c == nil {
		return 0
	}
	if len(g.Peers) > 0 {
		sent := 0
		for _, p := range g.Peers {
			if _, err := c.WriteTo(buf, net.UDPAddrFromAddrPort(p)); err != nil {
				e.opt.Log.Debug("hello not sent", "group", g.Name, "peer", p, "error", err)
				continue
			}
			sent++
		}
		return sent
	}
	// Multicast: out of the group's interface, whatever the routes say.
	ifi, err := e.opt.InterfaceByName(g.Interface)
	if err != nil {
		e.opt.Log.Debug("hello not sent", "group", g.Name, "error", err)
		return 0
	}
	dst := netip.AddrPortFrom(Multicast4, uint16(g.Port))
	if g.Is6 {
		dst = netip.AddrPortFrom(Multicast6.WithZone(ifi.Name), uint16(g.Port))
		err = ipv6.NewPacketConn(c).SetMulticastInterface(ifi)
	} else {
		err = ipv4.NewPacketConn(c).SetMulticastInterface(ifi)
	}
	if err == nil {
		_, err = c.WriteTo(buf, net.UDPAddrFromAddrPort(dst))
	}
	if err != nil {
		e.opt.Log.Debug("hello not sent", "group", g.Name, "error", err)
		return 0
	}
	return 1
}

func (e *Endpoint) receive(c net.PacketConn) {
	buf := make([]byte, MaxLen+1)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			select {
			case <-e.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.opt.Log.Debug("hello read", "error", err)
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort().Addr().Unmap().WithZone("")
		e.handle(buf[:n], src, c == e.opt.Conn6, time.Now())
	}
}

// handle takes in one datagram from src, received on the IPv6 socket if
// is6.
func (e *Endpoint) handle(b []byte, src netip.Addr, is6 bool, now time.Time) {
	if IsAdmin(b) {
		e.handleAdmin(b, src, now)
		return
	}
	// The group name decides the key, so find it before checking the
	// MAC: a structural parse without a key first.
	m, err := Parse(b, nil)
	if err != nil {
		e.dropFamily(is6, DropMalformed)
		e.opt.Log.Debug("hello dropped", "from", src, "error", err)
		return
	}
	if m.Node == e.opt.Node {
		return
	}
	g := (*e.groups.Load())[m.Group]
	if g == nil {
		e.dropFamily(is6, DropUnknownGroup)
		e.opt.Log.Debug("hello dropped: unknown group", "from", src, "group", m.Group, "node", m.Node)
		return
	}
	if m.VRID != g.VRID {
		g.dropped[DropVRID].Add(1)
		return
	}
	if len(g.Peers) > 0 && !slices.ContainsFunc(g.Peers, func(p netip.AddrPort) bool { return p.Addr().Unmap().WithZone("") == src }) {
		g.dropped[DropNotPeer].Add(1)
		return
	}
	if g.key != nil {
		if m, err = Parse(b, g.key); err != nil {
			g.dropped[DropAuth].Add(1)
			e.opt.Log.Debug("hello dropped", "group", g.Name, "from", src, "error", err)
			return
		}
		if d := now.Sub(m.Time); d > Window || d < -Window {
			g.dropped[DropStale].Add(1)
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if g.key != nil {
		if last, ok := g.last[m.Node]; ok && !m.Time.After(last) {
			g.dropped[DropStale].Add(1)
			return
		}
		g.last[m.Node] = m.Time
	}
	p := g.peers[src]
	if p == nil {
		p = &Peer{Addr: src}
		g.peers[src] = p
	}
	p.Node, p.ConfigHash, p.State, p.Priority, p.LastSeen = m.Node, m.ConfigHash, m.State, m.Priority, now
	p.Hellos++
}

// dropFamily counts a datagram that names none of our groups against
// every group of the family it arrived on.
func (e *Endpoint) dropFamily(is6 bool, reason int) {
	for _, g := range *e.groups.Load() {
		if g.Is6 == is6 {
			g.dropped[reason].Add(1)
		}
	}
}
