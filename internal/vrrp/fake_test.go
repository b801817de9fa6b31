package vrrp

import (
	"context"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeNet is a broadcast link between fakeConns. Adverts cross it as
// bytes, through Marshal/Seal and ParseAdvert/Open, so the state machine
// tests exercise the codec too.
type fakeNet struct {
	mu    sync.Mutex
	conns []*fakeConn
	cut   bool // partitioned: nothing is delivered
}

func (n *fakeNet) setCut(cut bool) {
	n.mu.Lock()
	n.cut = cut
	n.mu.Unlock()
}

// conn attaches a new node with address addr; key, if set, authenticates.
func (n *fakeNet) conn(t *testing.T, addr string, key []byte) *fakeConn {
	t.Helper()
	c := &fakeConn{net: n, addr: netip.MustParseAddr(addr), in: make(chan Packet, 64)}
	if key != nil {
		var err error
		if c.auth, err = NewAuthenticator(key); err != nil {
			t.Fatal(err)
		}
	}
	n.mu.Lock()
	n.conns = append(n.conns, c)
	n.mu.Unlock()
	return c
}

func (n *fakeNet) deliver(from *fakeConn, b []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut {
		return
	}
	for _, c := range n.conns {
		if c != from {
			c.receiveLocked(b, from.addr, 255)
		}
	}
}

type fakeConn struct {
	net  *fakeNet
	addr netip.Addr
	auth *Authenticator
	in   chan Packet

	closed bool // guarded by net.mu

	mu   sync.Mutex
	sent []sentAdvert
}

type sentAdvert struct {
	at  time.Time
	adv Advert
}

var (
	_ Conn         = (*fakeConn)(nil)
	_ ConfigHasher = (*fakeConn)(nil)
)

// SetConfigHash does what the raw socket's does: only authenticated
// adverts carry the hash.
func (c *fakeConn) SetConfigHash(h []byte) {
	if c.auth != nil {
		c.auth.SetConfigHash(h)
	}
}

func group(a netip.Addr) netip.Addr {
	if a.Is4() {
		return GroupIPv4
	}
	return GroupIPv6
}

func (c *fakeConn) Send(a Advert) error {
	b, err := c.encode(a)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.sent = append(c.sent, sentAdvert{time.Now(), a})
	c.mu.Unlock()
	c.net.deliver(c, b)
	return nil
}

func (c *fakeConn) encode(a Advert) ([]byte, error) {
	if c.auth != nil {
		return c.auth.Seal(nil, a, c.addr, group(c.addr))
	}
	return a.Marshal(nil, c.addr, group(c.addr))
}

func (c *fakeConn) Receive() <-chan Packet { return c.in }

func (c *fakeConn) Close() error {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.in)
	}
	return nil
}

// inject delivers raw bytes to c as if src had sent them with ttl.
func (c *fakeConn) inject(b []byte, src netip.Addr, ttl int) {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	c.receiveLocked(b, src, ttl)
}

func (c *fakeConn) receiveLocked(b []byte, src netip.Addr, ttl int) {
	if c.closed {
		return
	}
	p := Packet{Src: src, TTL: ttl}
	if c.auth != nil {
		var h []byte
		p.Advert, h, p.Err = c.auth.OpenHash(b, src, group(src))
		if h != nil {
			p.ConfigHash = hex.EncodeToString(h)
		}
	} else {
		p.Advert, p.Err = ParseAdvert(b, src, group(src))
	}
	select {
	case c.in <- p:
	default: // a full socket buffer drops, it does not block the sender
	}
}

// sentSince returns the adverts c sent at or after t.
func (c *fakeConn) sentSince(t time.Time) []sentAdvert {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.sent, func(s sentAdvert) bool { return !s.at.Before(t) })
	if i < 0 {
		return nil
	}
	return slices.Clone(c.sent[i:])
}

// fakeAnnouncer records calls and whether it holds the addresses.
type fakeAnnouncer struct {
	slow time.Duration // each Acquire and AcquireFrom takes this long

	mu    sync.Mutex
	held  bool
	calls []annCall
}

type annCall struct {
	op       string // acquire, release, announce
	at       time.Time
	from     netip.Addr // the other master of an AcquireFrom or ReleaseTo
	handover bool       // AcquireFrom or ReleaseTo
}

var _ HandoverAnnouncer = (*fakeAnnouncer)(nil)

func (f *fakeAnnouncer) record(op string, held bool) error {
	return f.add(annCall{op: op}, held)
}

func (f *fakeAnnouncer) recordFrom(op string, held bool, from netip.Addr) error {
	return f.add(annCall{op: op, from: from, handover: true}, held)
}

func (f *fakeAnnouncer) add(c annCall, held bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.at = time.Now()
	f.calls = append(f.calls, c)
	f.held = held
	return nil
}

func (f *fakeAnnouncer) Acquire(ctx context.Context, vips []netip.Addr) error {
	time.Sleep(f.slow)
	return f.record("acquire", true)
}

func (f *fakeAnnouncer) ReleaseTo(ctx context.Context, vips []netip.Addr, next netip.Addr) error {
	return f.recordFrom("release", false, next)
}

func (f *fakeAnnouncer) AcquireFrom(ctx context.Context, vips []netip.Addr, prev netip.Addr) error {
	time.Sleep(f.slow)
	return f.recordFrom("acquire", true, prev)
}

// first returns the first call of op, and whether there was one.
func (f *fakeAnnouncer) first(op string) (annCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.op == op {
			return c, true
		}
	}
	return annCall{}, false
}

// countFrom counts the calls of op naming the other master from.
func (f *fakeAnnouncer) countFrom(op string, from netip.Addr) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.op == op && c.from == from {
			n++
		}
	}
	return n
}

// last returns the last call of op, and whether there was one.
func (f *fakeAnnouncer) last(op string) (annCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].op == op {
			return f.calls[i], true
		}
	}
	return annCall{}, false
}

func (f *fakeAnnouncer) Release(ctx context.Context, vips []netip.Addr) error {
	return f.record("release", false)
}

func (f *fakeAnnouncer) Announce(ctx context.Context, vips []netip.Addr) error {
	f.mu.Lock()
	held := f.held
	f.mu.Unlock()
	return f.record("announce", held)
}

func (f *fakeAnnouncer) holds() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

func (f *fakeAnnouncer) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.op == op {
			n++
		}
	}
	return n
}

// node is a running Instance on a fakeNet.
type node struct {
	in     *Instance
	conn   *fakeConn
	ann    *fakeAnnouncer
	cancel context.CancelFunc
	done   chan error
}

var testVIPs = []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}

// testConfig is a virtual router on 100ms adverts for node addr.
func testConfig(addr string, prio uint8) Config {
	return Config{
		VRID:      51,
		Priority:  prio,
		Interval:  100 * time.Millisecond,
		VIPs:      testVIPs,
		Accept:    true,
		LocalAddr: netip.MustParseAddr(addr),
	}
}

// start runs an Instance for cfg on n; stop (also run at cleanup) ends it.
func start(t *testing.T, n *fakeNet, cfg Config, key []byte) *node {
	t.Helper()
	return startWith(t, n, cfg, key, &fakeAnnouncer{})
}

// startWith is start with the announcer ann.
func startWith(t *testing.T, n *fakeNet, cfg Config, key []byte, ann *fakeAnnouncer) *node {
	t.Helper()
	conn := n.conn(t, cfg.LocalAddr.String(), key)
	nd := &node{conn: conn, ann: ann, done: make(chan error, 1)}
	nd.in = New(cfg, conn, nd.ann, nil)
	ctx, cancel := context.WithCancel(context.Background())
	nd.cancel = cancel
	go func() { nd.done <- nd.in.Run(ctx) }()
	t.Cleanup(func() { nd.stop(t) })
	return nd
}

// stop cancels Run and waits for it; it reports Run's error once.
func (nd *node) stop(t *testing.T) {
	t.Helper()
	nd.cancel()
	if err, ok := <-nd.done; ok {
		close(nd.done)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// peer is a scripted VRRP speaker without an Instance: it sends adverts
// with prio every interval, count times, starting now.
func (c *fakeConn) advertise(prio uint8, interval time.Duration, count int) {
	for i := range count {
		if i > 0 {
			time.Sleep(interval)
		}
		c.Send(Advert{VRID: 51, Priority: prio, MaxAdvertInterval: interval, Addrs: testVIPs})
	}
}

// transitions drains the Events received so far.
func drain(in *Instance) []Transition {
	var ts []Transition
	for {
		select {
		case t := <-in.Events():
			ts = append(ts, t)
		default:
			return ts
		}
	}
}
