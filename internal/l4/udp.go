package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// maxDatagram is the largest UDP payload over IPv4 or IPv6 without
// jumbograms, rounded up.
const maxDatagram = 64 << 10

// defaultUDPIdle applies when the service sets no idle timeout: a UDP
// session without one would never end.
const defaultUDPIdle = 60 * time.Second

// UDPProxy relays UDP datagrams between clients and backends through
// sessions: the first datagram from a client address picks a backend and
// opens a connected socket to it; the session's replies go back to the
// client from the listening socket; a session ends after the idle timeout
// without traffic in either direction. A full table, or a client address
// at its own limit, evicts the least recently active session (udpTable).
//
// Threading: each Serve loop owns its session table outright (no lock):
// it alone adds, looks up, expires, evicts and removes sessions,
// from the one goroutine that reads the listening socket. Each session has
// a reply goroutine that only reads its backend socket, writes to the
// listening socket (concurrent writes to a UDP socket are safe) and
// updates the session's atomics. All methods are safe for concurrent use.
type UDPProxy struct {
	svc atomic.Pointer[balancer.Service]
	log *slog.Logger
	counters

	draining atomic.Bool // no new sessions; Serve returns once its sessions expired
	stopping atomic.Bool // Shutdown's deadline passed: end every session now

	mu      sync.Mutex
	sockets map[*net.UDPConn]struct{} // being served, so Shutdown can wake their loops
	closed  bool                      // Shutdown was called: Serve refuses
	serving sync.WaitGroup
}

// NewUDP returns a proxy for svc. log is used as given; the caller scopes
// it with component and service.
func NewUDP(svc *balancer.Service, log *slog.Logger) *UDPProxy {
	p := &UDPProxy{log: log, sockets: map[*net.UDPConn]struct{}{}}
	p.svc.Store(svc)
	return p
}

// Update makes svc the snapshot for new sessions. Live sessions keep their
// backend.
func (p *UDPProxy) Update(svc *balancer.Service) { p.svc.Store(svc) }

// Active is the number of live sessions.
func (p *UDPProxy) Active() int { return int(p.active.Load()) }

// Stats reads the proxy's counters.
func (p *UDPProxy) Stats() Stats { return p.counters.stats() }

// Serve relays the datagrams arriving on pc until ctx is done, pc is
// closed, or Shutdown has drained or ended its sessions; then it ends
// every session, waits for their goroutines and returns nil, closing pc.
// A read error other than pc being closed is returned.
func (p *UDPProxy) Serve(ctx context.Context, pc *net.UDPConn) error {
	defer pc.Close()
	if !p.addSocket(pc) {
		return nil
	}
	defer p.serving.Done()
	defer p.removeSocket(pc)
	stop := context.AfterFunc(ctx, func() { wake(pc) })
	defer stop()

	l := &udpLoop{
		p:        p,
		pc:       pc,
		vip:      addrPortOf(pc.LocalAddr()).Addr().Unmap(),
		sessions: newUDPTable(),
	}
	defer l.endAll()
	return l.run(ctx)
}

// Shutdown stops creating sessions and waits until the live ones expired
// and every Serve returned. When ctx ends first it ends them all at once,
// waits for Serve to return and returns ctx.Err().
func (p *UDPProxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.draining.Store(true)
	p.wakeAllLocked()
	p.mu.Unlock()

	served := make(chan struct{})
	go func() {
		p.serving.Wait()
		close(served)
	}()
	select {
	case <-served:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	p.stopping.Store(true)
	p.wakeAllLocked()
	p.mu.Unlock()
	<-served
	return ctx.Err()
}

func (p *UDPProxy) addSocket(pc *net.UDPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.sockets[pc] = struct{}{}
	p.serving.Add(1)
	return true
}

func (p *UDPProxy) removeSocket(pc *net.UDPConn) {
	p.mu.Lock()
	delete(p.sockets, pc)
	p.mu.Unlock()
}

func (p *UDPProxy) wakeAllLocked() {
	for pc := range p.sockets {
		wake(pc)
	}
}

// wake interrupts a read blocked on pc. The loop then re-checks why it
// should stop, after re-arming its own deadline, so no wake is lost.
func wake(pc *net.UDPConn) { pc.SetReadDeadline(time.Unix(1, 0)) }

// udpLoop is one Serve call's state, owned by its goroutine.
type udpLoop struct {
	p         *UDPProxy
	pc        *net.UDPConn
	vip       netip.Addr
	sessions  udpTable
	replies   sync.WaitGroup
	nextSweep time.Time
}

func (l *udpLoop) run(ctx context.Context) error {
	buf := make([]byte, maxDatagram)
	l.armSweep(time.Now())
	for {
		n, from, err := l.pc.ReadFromUDPAddrPort(buf)
		if err == nil {
			l.forward(ctx, buf[:n], from)
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The sweep deadline, or a wake.
		case errors.Is(err, net.ErrClosed):
			return nil
		default:
			return fmt.Errorf("l4: read on %v: %w", l.pc.LocalAddr(), err)
		}
		if l.shouldStop(ctx) {
			return nil
		}
		if now := time.Now(); !now.Before(l.nextSweep) {
			l.sweep(ctx, now)
			l.armSweep(now)
		} else {
			l.pc.SetReadDeadline(l.nextSweep)
		}
		if l.shouldStop(ctx) {
			return nil
		}
	}
}

func (l *udpLoop) shouldStop(ctx context.Context) bool {
	return ctx.Err() != nil || l.p.stopping.Load() || (l.p.draining.Load() && l.sessions.len() == 0)
}

func idleOf(svc *balancer.Service) time.Duration {
	if svc.IdleTimeout > 0 {
		return svc.IdleTimeout
	}
	return defaultUDPIdle
}

// armSweep schedules the next sweep with the read deadline, which fires
// even while datagrams keep arriving.
func (l *udpLoop) armSweep(now time.Time) {
	l.nextSweep = now.Add(max(idleOf(l.p.svc.Load())/4, minIdleCheck))
	l.pc.SetReadDeadline(l.nextSweep)
}

// forward sends a client's datagram to its session's backend, opening the
// session first if needed. The steady-state path does not allocate.
func (l *udpLoop) forward(ctx context.Context, b []byte, from netip.AddrPort) {
	s := l.sessions.get(from)
	if s != nil && s.dead.Load() {
		l.end(ctx, s, "backend socket failed")
		s = nil
	}
	// A backend removed by health checking or put in maintenance (not
	// merely quiesced or drained) loses its sessions: the client's next
	// datagram picks a live backend, as IPVS's expire_nodest_conn does.
	if s != nil && s.backend.Evicted() && !l.p.svc.Load().Quiescent {
		l.end(ctx, s, "backend down")
		s = nil
	}
	if s == nil {
		if s = l.open(ctx, from); s == nil {
			return
		}
	} else {
		l.sessions.used(s)
	}
	if !s.touched.Load() {
		s.touched.Store(true)
	}
	if _, err := s.conn.Write(b); err != nil {
		l.p.sendErrors.Add(1)
		return
	}
	s.in.Add(uint64(len(b)))
}

// open starts a session for a new client, or counts why it cannot.
func (l *udpLoop) open(ctx context.Context, from netip.AddrPort) *udpSession {
	p := l.p
	if p.draining.Load() {
		p.dropped.Add(1)
		return nil
	}
	svc := p.svc.Load()
	client := from.Addr().Unmap()
	var tried balancer.Tried
	for attempt := 0; attempt <= svc.Retries; attempt++ {
		b, err := svc.PickFlow(from, l.vip, &tried)
		if err != nil {
			if attempt == 0 {
				p.refused.Add(1)
			}
			break
		}
		b.Acquire()
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.Addr))
		// A connected UDP socket proves nothing about the backend, so a
		// success is not reported to passive health checking; a failure
		// (no route, no address) is.
		if err != nil {
			b.Release(0, 0)
			b.ConnectFailed()
			p.connectFailures.Add(1)
			tried.Add(b)
			if p.debugging(ctx) {
				p.log.Debug("backend socket failed", "client", from, "backend", b.Addr, "error", err)
			}
			continue
		}
		l.makeRoom(ctx, svc, client)
		s := &udpSession{client: from, backend: b, conn: conn, lastSeen: time.Now()}
		l.sessions.add(s)
		p.accepted.Add(1)
		p.active.Add(1)
		l.replies.Add(1)
		go l.relayReplies(ctx, s)
		if p.debugging(ctx) {
			p.log.Debug("session open", "client", from, "backend", b.Addr)
		}
		return s
	}
	p.noBackend.Add(1)
	return nil
}

// makeRoom evicts what a new session of client needs evicted: the
// client's least recently active session when it is at
// svc.MaxPerClient, then the table's when the table is at
// svc.MaxSessions.
func (l *udpLoop) makeRoom(ctx context.Context, svc *balancer.Service, client netip.Addr) {
	if svc.MaxPerClient > 0 && l.sessions.addrSessions(client) >= svc.MaxPerClient {
		l.p.evictedPerClient.Add(1)
		l.end(ctx, l.sessions.oldestOf(client), "client at max_sessions_per_client")
	}
	for svc.MaxSessions > 0 && l.sessions.len() >= svc.MaxSessions {
		l.p.evicted.Add(1)
		l.end(ctx, l.sessions.victim(), "table full")
	}
}

// sweep ends the sessions idle for the idle timeout, and failed ones.
func (l *udpLoop) sweep(ctx context.Context, now time.Time) {
	idle := idleOf(l.p.svc.Load())
	for _, s := range l.sessions.byClient {
		switch {
		case s.dead.Load():
			l.end(ctx, s, "backend socket failed")
		case s.touched.Swap(false):
			s.lastSeen = now
		case now.Sub(s.lastSeen) >= idle:
			l.p.idleTimeouts.Add(1)
			l.end(ctx, s, "idle")
		}
	}
}

// end removes s; its reply goroutine then sees the closed socket, releases
// the backend and exits.
func (l *udpLoop) end(ctx context.Context, s *udpSession, why string) {
	l.sessions.remove(s)
	s.conn.Close()
	if l.p.debugging(ctx) {
		l.p.log.Debug("session closed", "client", s.client, "backend", s.backend.Addr, "reason", why)
	}
}

func (l *udpLoop) endAll() {
	for _, s := range l.sessions.byClient {
		l.sessions.remove(s)
		s.conn.Close()
	}
	l.replies.Wait()
}

// relayReplies is a session's reply goroutine.
func (l *udpLoop) relayReplies(ctx context.Context, s *udpSession) {
	defer l.replies.Done()
	if err := readReplies(s, l.pc, &l.p.counters); !errors.Is(err, net.ErrClosed) {
		// The loop replaces a dead session on its next datagram or sweep.
		s.dead.Store(true)
		s.conn.Close()
		if l.p.debugging(ctx) {
			l.p.log.Debug("backend socket failed", "client", s.client, "backend", s.backend.Addr, "error", err)
		}
	}
	s.backend.Release(int64(s.in.Load()), int64(s.out.Load()))
	l.p.active.Add(-1)
}

// debugging guards per-connection logs: checked at the call site, it
// spares building their arguments, which allocates.
func (p *UDPProxy) debugging(ctx context.Context) bool {
	return p.log.Enabled(ctx, slog.LevelDebug)
}

// udpSession is one client's flow to its backend.
type udpSession struct {
	client  netip.AddrPort
	backend *balancer.Backend
	conn    *net.UDPConn // connected to the backend

	touched atomic.Bool // traffic since the last sweep, either direction
	replied atomic.Bool // a reply since the table last passed it over for eviction
	dead    atomic.Bool // the reply goroutine quit on an error
	in, out atomic.Uint64

	lastSeen time.Time // owned by the serve loop
	// links and addrList place the session in the table's recency
	// orders; owned by the serve loop.
	links    [2]sessionLink
	addrList *sessionList
}
