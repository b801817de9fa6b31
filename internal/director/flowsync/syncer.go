package flowsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/replay"
)

// Defaults and fixed timings.
const (
	// DefaultMaxRate is how many entries a second a Syncer sends when
	// Options.MaxRate is 0.
	DefaultMaxRate = 50000
	// DefaultFlush is how long an offered entry waits for others to
	// share its datagram.
	DefaultFlush = 50 * time.Millisecond
	// DefaultFlowTimeout is the kernel's default flow_timeout.
	DefaultFlowTimeout = 300 * time.Second
	// JoinInterval is how often a join request is repeated to a peer
	// whose table has not arrived yet.
	JoinInterval = time.Second
	// MaxSkew bounds how far an authenticated datagram's clock may be
	// from ours.
	MaxSkew = 30 * time.Second
	// kickBatch is how many queued entries make the sender go before
	// its next flush tick.
	kickBatch = 32
	// maxSenders bounds the replay windows kept, one per sender name.
	maxSenders = 256
	// maxPersistSent bounds the persistence entries remembered as sent.
	maxPersistSent = 1 << 16
	// maxLearned bounds the flows remembered as learnt from peers.
	maxLearned = 1 << 20
	// learnedMargin covers the time between noting a learnt flow and
	// the kernel stamping it.
	learnedMargin = 100 * time.Millisecond
)

// Options configures a Syncer.
type Options struct {
	// Node is this node's name, as datagrams carry it.
	Node string
	// Conn is the bound UDP socket (see Listen); the Syncer owns it and
	// closes it when Run returns.
	Conn net.PacketConn
	// Peers are the other directors' sync addresses. Datagrams from any
	// other address are dropped (not_peer).
	Peers []netip.AddrPort
	// AuthKey is the HA group's secret (auth_key_file); nil: datagrams
	// carry no MAC and none is required.
	AuthKey []byte
	// MaxRate bounds the entries sent per second (each to every peer
	// it is for); 0: DefaultMaxRate.
	MaxRate int
	// Queue bounds the entries waiting to be sent; when it is full the
	// oldest offered one is dropped (counted "rate"); the entries of
	// scans and dumps wait for room instead, and are never dropped.
	// 0: one second at MaxRate.
	Queue int
	// FlowTimeout is the kernel's flow_timeout; 0: DefaultFlowTimeout.
	FlowTimeout time.Duration
	// Flush is how long an entry waits for others to share its
	// datagram; 0: DefaultFlush.
	Flush time.Duration
	// Refresh is how often the whole flow table is scanned for the
	// flows to send again (policy.go); 0: a quarter of FlowTimeout, so
	// that the peers' copies are renewed three times before they expire.
	// A scan reads every entry of the kernel table: about 1.5 s of a CPU
	// for a full table of 262,144 flows (BenchmarkKernelScan).
	Refresh time.Duration

	Table    Table
	Resolver Resolver
	// Events, when set, feeds the Syncer the kernel's new flows. When
	// it fails it is read again after FeedRetry, doubling up to
	// FeedRetryMax (0: DefaultFeedRetry, DefaultFeedRetryMax).
	Events                  Events
	FeedRetry, FeedRetryMax time.Duration
	Log                     *slog.Logger
}

// Listen opens the sync socket on addr (host:port).
func Listen(addr string) (net.PacketConn, error) {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("flowsync: %w", err)
	}
	return c, nil
}

// Syncer sends this node's flow and persistence entries to its peers and
// installs theirs. Offer, RingChanged and Status may be called from any
// goroutine, before, during and after Run.
type Syncer struct {
	opt   Options
	key   []byte
	seq   atomic.Uint64
	burst float64

	// The queue: live holds what Offer queued, the oldest dropped when
	// full; bulk what scans and dumps queued (offerWait), never dropped,
	// at most half the queue. Together at most Options.Queue.
	qmu        sync.Mutex
	live, bulk fifo
	drained    chan struct{} // closed, and replaced, whenever the sender takes
	kick       chan struct{}

	scanMu   sync.Mutex
	pending  map[uint32]bool
	scanFull bool // the next kicked scan is of the whole table
	scanKick chan struct{}

	mu      sync.Mutex // windows, peers, dumps
	windows map[string]*replay.Window
	peers   map[netip.Addr]*peer
	dumps   map[netip.AddrPort]*dump

	// persistSent is when each persistence entry was last offered;
	// only the Events goroutine uses it.
	persistSent map[sentPersist]time.Time

	lmu     sync.Mutex
	learned map[Flow]time.Time // flows installed from peers, and when

	fmu    sync.Mutex
	feedSt FeedStatus

	wg sync.WaitGroup // dumps

	sent, received, installed, dgSent, dgReceived, dumped atomic.Uint64
	dropped                                               [dropReasons]atomic.Uint64
}

type item struct {
	e  Entry
	to netip.AddrPort // invalid: every peer
}

// fifo is a ring buffer of items.
type fifo struct {
	q       []item
	head, n int
}

func newFIFO(size int) fifo { return fifo{q: make([]item, size)} }

// push appends it; there is room.
func (f *fifo) push(it item) {
	f.q[(f.head+f.n)%len(f.q)] = it
	f.n++
}

// pop removes the oldest item; there is one.
func (f *fifo) pop() item {
	it := f.q[f.head]
	f.q[f.head] = item{}
	f.head = (f.head + 1) % len(f.q)
	f.n--
	return it
}

type peer struct {
	addr      netip.AddrPort
	node      string
	heard     time.Time
	joined    time.Time // when its table dump ended
	datagrams uint64
	entries   uint64
}

type dump struct {
	running bool
	ended   time.Time
}

// Drop reasons.
const (
	DropAuth = iota
	DropReplay
	DropMalformed
	DropNotPeer
	DropUnknownService
	DropUnknownBackend
	DropInstall
	DropRate
	DropSend
	dropReasons
)

var dropNames = [dropReasons]string{"auth", "replay", "malformed", "not_peer", "unknown_service",
	"unknown_backend", "install", "rate", "send"}

// New makes a Syncer; Run starts it.
func New(opt Options) (*Syncer, error) {
	if opt.Conn == nil || opt.Table == nil || opt.Resolver == nil {
		return nil, errors.New("flowsync: a socket, a table and a resolver are required")
	}
	if len(opt.Node) == 0 || len(opt.Node) > MaxNode {
		return nil, fmt.Errorf("flowsync: node name %q not 1-%d bytes", opt.Node, MaxNode)
	}
	if opt.MaxRate <= 0 {
		opt.MaxRate = DefaultMaxRate
	}
	if opt.Queue <= 0 {
		opt.Queue = max(opt.MaxRate, 2*kickBatch)
	}
	opt.Queue = max(opt.Queue, 2) // half for scans and dumps, the rest live
	if opt.Flush <= 0 {
		opt.Flush = DefaultFlush
	}
	if opt.FlowTimeout <= 0 {
		opt.FlowTimeout = DefaultFlowTimeout
	}
	if opt.Refresh <= 0 {
		opt.Refresh = opt.FlowTimeout / 4
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.FeedRetry <= 0 {
		opt.FeedRetry = DefaultFeedRetry
	}
	if opt.FeedRetryMax <= 0 {
		opt.FeedRetryMax = DefaultFeedRetryMax
	}
	opt.FeedRetryMax = max(opt.FeedRetryMax, opt.FeedRetry)
	s := &Syncer{
		opt:      opt,
		live:     newFIFO(opt.Queue),
		bulk:     newFIFO(max(opt.Queue/2, 1)),
		drained:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		pending:  map[uint32]bool{},
		scanKick: make(chan struct{}, 1),
		windows:  map[string]*replay.Window{},
		peers:    map[netip.Addr]*peer{},
		dumps:    map[netip.AddrPort]*dump{},
		learned:  map[Flow]time.Time{},

		persistSent: map[sentPersist]time.Time{},
		feedSt:      FeedStatus{State: FeedOff},
		// Two flush intervals' worth, and at least a full datagram.
		burst: max(float64(opt.MaxRate)*2*opt.Flush.Seconds(), 1),
	}
	if opt.AuthKey != nil {
		s.key = Key(opt.AuthKey)
	}
	// Sequence numbers start at the clock, so that a restarted sender
	// goes on above the numbers its peers last saw from it.
	s.seq.Store(uint64(time.Now().UnixNano()))
	for _, p := range opt.Peers {
		a := p.Addr().Unmap()
		s.peers[a] = &peer{addr: netip.AddrPortFrom(a, p.Port())}
	}
	return s, nil
}

// Run sends joins, offered entries and scans until ctx ends, and installs
// what peers send; it reads the Events feed, again after each failure
// (feed). It returns nil when ctx ends. Run is called once.
func (s *Syncer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.receive(ctx) })
	wg.Go(func() { s.sendLoop(ctx) })
	wg.Go(func() { s.joinLoop(ctx) })
	wg.Go(func() { s.scanLoop(ctx) })
	if s.opt.Events != nil {
		wg.Go(func() { s.feed(ctx) })
	}
	<-ctx.Done()
	s.opt.Conn.Close()
	wg.Wait()
	s.wg.Wait()
	return nil
}

// Offer queues e for every peer. It never blocks: when the queue is full
// the oldest entry Offer queued is dropped and counted ("rate"). A scan's
// or a dump's entries are not: a joining peer would miss part of the
// table, or its end, and ask for all of it again.
func (s *Syncer) Offer(e Entry) {
	s.qmu.Lock()
	if s.queued() >= len(s.live.q) {
		// bulk holds at most half the queue: live has the rest.
		s.live.pop()
		s.dropped[DropRate].Add(1)
	}
	s.live.push(item{e: e})
	n := s.queued()
	s.qmu.Unlock()
	if n >= kickBatch {
		s.kickSender()
	}
}

// queued is how many entries wait; s.qmu is held.
func (s *Syncer) queued() int { return s.live.n + s.bulk.n }

// offerWait queues it, waiting while the queue is half full or more: bulk
// senders (scans, dumps) leave the other half to Offer.
func (s *Syncer) offerWait(ctx context.Context, it item) error {
	for {
		s.qmu.Lock()
		if n := s.queued(); n < len(s.live.q)/2 || n == 0 {
			s.bulk.push(it)
			n++
			s.qmu.Unlock()
			if n >= kickBatch {
				s.kickSender()
			}
			return nil
		}
		ch := s.drained
		s.qmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Syncer) kickSender() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// take removes up to max entries from the queue: the scans' and dumps'
// get half of max when the live entries would take it all, so that
// neither starves the other.
func (s *Syncer) take(max int, out []item) []item {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	bulk := min(s.bulk.n, (max+1)/2)
	for range bulk {
		out = append(out, s.bulk.pop())
	}
	max -= bulk
	for ; max > 0 && s.live.n > 0; max-- {
		out = append(out, s.live.pop())
	}
	for ; max > 0 && s.bulk.n > 0; max-- {
		out = append(out, s.bulk.pop())
	}
	close(s.drained)
	s.drained = make(chan struct{})
	return out
}

// sendLoop sends queued entries at most MaxRate a second (a token bucket
// holding two flush intervals' worth), every Flush or as soon as a
// datagram's worth is queued.
func (s *Syncer) sendLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Flush)
	defer t.Stop()
	rate := float64(s.opt.MaxRate)
	tokens, last := s.burst, time.Now()
	var items []item
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		now := time.Now()
		tokens = min(s.burst, tokens+now.Sub(last).Seconds()*rate)
		last = now
		items = s.take(int(tokens), items[:0])
		tokens -= float64(len(items))
		buf = s.transmit(items, buf)
	}
}

// transmit packs items into datagrams, per destination, and sends them.
func (s *Syncer) transmit(items []item, buf []byte) []byte {
	if len(items) == 0 {
		return buf
	}
	var all []Entry
	var to map[netip.AddrPort][]Entry
	for _, it := range items {
		if !it.to.IsValid() {
			all = append(all, it.e)
			continue
		}
		if to == nil {
			to = map[netip.AddrPort][]Entry{}
		}
		to[it.to] = append(to[it.to], it.e)
	}
	buf = s.pack(all, s.opt.Peers, buf)
	for dst, es := range to {
		buf = s.pack(es, []netip.AddrPort{dst}, buf)
	}
	return buf
}

// pack sends es to dsts in as few datagrams as fit.
func (s *Syncer) pack(es []Entry, dsts []netip.AddrPort, buf []byte) []byte {
	hdr := HeaderLen(s.opt.Node, s.key != nil)
	for len(es) > 0 {
		n, size := 0, hdr
		for n < len(es) && n < MaxEntries && size+es[n].Len() <= MaxLen {
			size += es[n].Len()
			n++
		}
		buf = s.write(es[:n], dsts, buf)
		es = es[n:]
	}
	return buf
}

// write sends one datagram of es to each of dsts.
func (s *Syncer) write(es []Entry, dsts []netip.AddrPort, buf []byte) []byte {
	d := Datagram{Node: s.opt.Node, Seq: s.seq.Add(1), Time: time.Now(), Entries: es}
	buf, err := d.Append(buf[:0], s.key)
	if err != nil {
		// Offered entries are checked when made (flowEntry, persistEntry), so
		// this is a bug; count it rather than lose it silently.
		s.dropped[DropMalformed].Add(uint64(len(es)))
		s.opt.Log.Warn("sync datagram not encoded", "error", err)
		return buf
	}
	for _, dst := range dsts {
		if _, err := s.opt.Conn.WriteTo(buf, net.UDPAddrFromAddrPort(dst)); err != nil {
			s.dropped[DropSend].Add(uint64(len(es)))
			s.opt.Log.Debug("sync datagram not sent", "peer", dst, "error", err)
			continue
		}
		s.dgSent.Add(1)
		s.sent.Add(uint64(len(es)))
	}
	return buf
}

// joinLoop asks every peer for its table, now and then each JoinInterval
// until the peer's dump has ended (a done entry came from it).
func (s *Syncer) joinLoop(ctx context.Context) {
	t := time.NewTicker(JoinInterval)
	defer t.Stop()
	var buf []byte
	for {
		var dsts []netip.AddrPort
		s.mu.Lock()
		for _, p := range s.peers {
			if p.joined.IsZero() {
				dsts = append(dsts, p.addr)
			}
		}
		s.mu.Unlock()
		if len(dsts) == 0 {
			return
		}
		buf = s.write([]Entry{{Kind: KindJoin}}, dsts, buf)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Syncer) receive(ctx context.Context) {
	buf := make([]byte, MaxLen+1)
	for {
		n, from, err := s.opt.Conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			s.opt.Log.Debug("sync read", "error", err)
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
		s.handle(ctx, buf[:n], src, time.Now())
	}
}

// handle takes in one datagram from src.
func (s *Syncer) handle(ctx context.Context, b []byte, src netip.AddrPort, now time.Time) {
	s.mu.Lock()
	p := s.peers[src.Addr()]
	s.mu.Unlock()
	if p == nil {
		s.dropped[DropNotPeer].Add(1)
		s.opt.Log.Debug("sync datagram dropped: not a peer", "from", src)
		return
	}
	d, err := Parse(b, s.key)
	if err != nil {
		if errors.Is(err, ErrAuth) {
			s.dropped[DropAuth].Add(1)
		} else {
			s.dropped[DropMalformed].Add(1)
		}
		s.opt.Log.Debug("sync datagram dropped", "from", src, "error", err)
		return
	}
	if d.Node == s.opt.Node {
		return
	}
	if s.key != nil {
		if skew := now.Sub(d.Time); skew > MaxSkew || skew < -MaxSkew {
			s.dropped[DropReplay].Add(1)
			s.opt.Log.Debug("sync datagram dropped: clock out of bounds", "from", src, "node", d.Node, "skew", skew)
			return
		}
	}
	s.mu.Lock()
	w := s.windows[d.Node]
	if w == nil {
		if len(s.windows) >= maxSenders {
			for k := range s.windows {
				delete(s.windows, k)
				break
			}
		}
		w = &replay.Window{}
		s.windows[d.Node] = w
	}
	if !w.Accept(d.Seq) {
		s.mu.Unlock()
		s.dropped[DropReplay].Add(1)
		s.opt.Log.Debug("sync datagram dropped: replayed", "from", src, "node", d.Node, "seq", d.Seq)
		return
	}
	p.node, p.heard = d.Node, now
	p.datagrams++
	p.entries += uint64(len(d.Entries))
	s.mu.Unlock()
	s.dgReceived.Add(1)
	s.received.Add(uint64(len(d.Entries)))
	for i := range d.Entries {
		s.install(ctx, &d.Entries[i], src, now)
	}
}

// install applies one received entry.
func (s *Syncer) install(ctx context.Context, e *Entry, src netip.AddrPort, now time.Time) {
	r := s.opt.Resolver
	switch e.Kind {
	case KindFlow:
		f := Flow{Src: e.Client, Dst: e.VIP, Proto: e.Proto}
		id, _, ok := r.Service(f)
		if !ok {
			s.dropped[DropUnknownService].Add(1)
			return
		}
		slot, ok := r.Slot(id, e.Backend)
		if !ok {
			s.dropped[DropUnknownBackend].Add(1)
			return
		}
		s.learn(f, now)
		if err := s.opt.Table.InsertFlow(f, slot); err != nil {
			s.dropped[DropInstall].Add(1)
			s.opt.Log.Debug("sync flow not installed", "flow", f, "error", err)
			return
		}
	case KindPersist:
		g, ok := r.GroupByKey(GroupKey{VIP: e.VIP.Addr(), Hash: e.Group})
		if !ok {
			s.dropped[DropUnknownService].Add(1)
			return
		}
		if err := s.opt.Table.InsertPersist(g.ID, g.mask(e.Client.Addr()), e.Backend); err != nil {
			s.dropped[DropInstall].Add(1)
			s.opt.Log.Debug("sync persistence entry not installed", "client", e.Client.Addr(), "error", err)
			return
		}
	case KindJoin:
		s.startDump(ctx, src, now)
		return
	case KindDone:
		s.mu.Lock()
		if p := s.peers[src.Addr()]; p != nil {
			if p.joined.IsZero() {
				s.opt.Log.Info("flow table received from peer", "peer", src, "node", p.node)
			}
			p.joined = now
		}
		s.mu.Unlock()
		return
	}
	s.installed.Add(1)
}

// startDump answers a join from to with this node's table, unless a dump
// to it is running or ended less than two JoinIntervals ago (the joiner
// asks again each JoinInterval until the first one's done entry arrives).
func (s *Syncer) startDump(ctx context.Context, to netip.AddrPort, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dumps[to]
	if d == nil {
		d = &dump{}
		s.dumps[to] = d
	}
	if d.running || (!d.ended.IsZero() && now.Sub(d.ended) < 2*JoinInterval) {
		return
	}
	d.running = true
	s.wg.Go(func() {
		err := s.dump(ctx, to)
		s.mu.Lock()
		d.running, d.ended = false, time.Now()
		s.mu.Unlock()
		if err != nil {
			s.opt.Log.Warn("flow table not sent to joining peer", "peer", to, "error", err)
			return
		}
		s.dumped.Add(1)
	})
}

// Status is what a Syncer reports.
type Status struct {
	Listen string
	// Entries sent (counted once per peer), received and installed.
	Sent, Received, Installed uint64
	// Datagrams sent and accepted.
	DatagramsSent, DatagramsReceived uint64
	// Queued entries wait to be sent.
	Queued int
	// Dumps counts the tables sent to joining peers.
	Dumps uint64
	// Dropped counts entries (send side: rate, send) or datagrams
	// (receive side: auth, replay, malformed, not_peer) or received
	// entries (unknown_service, unknown_backend, install) by reason,
	// only those above zero.
	Dropped map[string]uint64
	Peers   []PeerStatus
	// Feed is the kernel's new-flow feed.
	Feed FeedStatus
}

// PeerStatus is what a Syncer knows of one peer.
type PeerStatus struct {
	Addr netip.AddrPort
	// Node is the name its datagrams carry; "" until one arrived.
	Node string
	// LastHeard is when its last accepted datagram arrived; zero: never.
	LastHeard time.Time
	// Joined is when its table (the answer to our join) was complete;
	// zero: not yet.
	Joined    time.Time
	Datagrams uint64
	Entries   uint64
}

// Status reports the counters and the peers, by address.
func (s *Syncer) Status() Status {
	st := Status{
		Sent: s.sent.Load(), Received: s.received.Load(), Installed: s.installed.Load(),
		DatagramsSent: s.dgSent.Load(), DatagramsReceived: s.dgReceived.Load(), Dumps: s.dumped.Load(),
	}
	if a := s.opt.Conn.LocalAddr(); a != nil {
		st.Listen = a.String()
	}
	s.qmu.Lock()
	st.Queued = s.queued()
	s.qmu.Unlock()
	for i := range s.dropped {
		if n := s.dropped[i].Load(); n > 0 {
			if st.Dropped == nil {
				st.Dropped = map[string]uint64{}
			}
			st.Dropped[dropNames[i]] = n
		}
	}
	s.mu.Lock()
	for _, p := range s.peers {
		st.Peers = append(st.Peers, PeerStatus{Addr: p.addr, Node: p.node, LastHeard: p.heard, Joined: p.joined,
			Datagrams: p.datagrams, Entries: p.entries})
	}
	s.mu.Unlock()
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int { return a.Addr.Compare(b.Addr) })
	st.Feed = s.Feed()
	return st
}
