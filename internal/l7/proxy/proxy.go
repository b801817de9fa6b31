package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/connset"
	"github.com/fulcrum-lb/fulcrum/internal/l7/poller"
)

// Proxy is the HTTP engine of one service: it accepts client connections,
// reads requests, picks a backend per request and relays the exchange over
// a pool of reusable backend connections.
//
// All methods are safe for concurrent use. Update may be called at any
// time, Serve once per listener (several listeners may share a proxy),
// Shutdown once at the end.
type Proxy struct {
	snap atomic.Pointer[snapshot]
	counters

	// conns holds the listeners and client connections. Connection
	// goroutines take its lock when they start and end; the per-request
	// path only reads conns.Closing, lock-free.
	conns *connset.Set[*clientConn]
	// releasing: a hand-over of the VIP is under way (SetReleasing); every
	// client connection closes after its current response.
	releasing atomic.Bool

	// dialCtx is cancelled by a forced Shutdown, ending dials in progress.
	// It is the proxy's lifetime, not a request's, hence kept here.
	dialCtx    context.Context
	cancelDial context.CancelFunc
	killed     atomic.Bool

	// h2 serves HTTP/2 connections; h2base.Shutdown makes it drain them.
	h2     *http2.Server
	h2base *http.Server

	// pools are the upstream connection pools by backend. They outlive
	// Update so a reload keeps warm connections to the backends it keeps.
	poolsMu sync.Mutex
	pools   map[*balancer.Backend]*hostPool

	// poller is what new connections wait on for reads, nil for Go's
	// netpoller (poller.go); pollers is where it comes from. pollerMu
	// guards the switch and the two fields below it.
	poller       atomic.Pointer[poller.Poller]
	pollers      *pollers
	pollerMu     sync.Mutex
	pollerWanted bool
	pollerErr    string // why the poller wanted does not run
}

// New returns a proxy for cfg.
func New(cfg *Config) *Proxy { return newProxy(cfg, sharedPollers) }

func newProxy(cfg *Config, ps *pollers) *Proxy {
	p := &Proxy{
		conns:   connset.New[*clientConn](),
		pools:   map[*balancer.Backend]*hostPool{},
		pollers: ps,
	}
	p.dialCtx, p.cancelDial = context.WithCancel(context.Background())
	s := p.compile(cfg)
	p.snap.Store(s)
	p.setPoller(s, pollerWanted(cfg))
	p.h2, p.h2base = newH2(s)
	return p
}

// Update makes cfg the configuration of new requests. Requests in flight
// finish with the one they started with; pooled connections to backends
// that cfg no longer names are closed.
func (p *Proxy) Update(cfg *Config) {
	s := p.compile(cfg)
	p.snap.Store(s)
	p.setPoller(s, pollerWanted(cfg))
	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	for b, hp := range p.pools {
		if _, ok := s.pools[b]; ok {
			continue
		}
		// Retired, but kept while requests are in flight on its
		// connections, so CloseBackend still finds them.
		if hp.retire() == 0 {
			delete(p.pools, b)
		}
	}
}

// Stats reads the proxy's counters.
func (p *Proxy) Stats() Stats {
	st := p.counters.stats()
	st.Poller, st.PollerError = p.pollerState()
	return st
}

// Active is the number of client connections open.
func (p *Proxy) Active() int { return int(p.active.Load()) }

// Serve accepts connections on ln and serves each in its own goroutine
// until ctx is done, ln is closed or Shutdown is called; then it returns
// nil, closing ln. Temporary accept errors (out of file descriptors) are
// retried with a backoff, as net/http does; any other is returned.
// Connections outlive Serve: Shutdown drains them.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	defer ln.Close()
	if !p.conns.AddListener(ln) {
		return nil
	}
	defer p.conns.RemoveListener(ln)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || p.conns.Closing() {
				return nil
			}
			var te interface{ Temporary() bool }
			if !errors.As(err, &te) || !te.Temporary() {
				return fmt.Errorf("l7: accept on %v: %w", ln.Addr(), err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.snap.Load().log.Warn("accept failed, retrying", "error", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		delay = 0
		p.accepted.Add(1)
		c := newClientConn(p, conn)
		if !p.track(c) {
			conn.Close()
			c.free()
			continue
		}
		go p.serveConn(c)
	}
}

// SetReleasing turns keep-alive off (on) or back on (off). The daemon
// turns it on while this node hands its VIP over but still holds it for
// the connections on it: each client connection then closes after its
// current response, and those waiting for a request close at once, so
// that the clients' next requests open connections that go to the new
// master, instead of keeping the old one busy until the hand-over times
// out. It reports how many idle connections it closed.
func (p *Proxy) SetReleasing(on bool) int {
	p.releasing.Store(on)
	if !on {
		return 0
	}
	n := 0
	p.conns.Each(func(c *clientConn) {
		if !c.isH2.Load() && c.served.Load() && c.state.CompareAndSwap(connIdle, connClosed) {
			c.closeSocket()
			n++
		}
	})
	return n
}

// keepAlive reports whether a client connection may wait for another
// request after this one.
func (p *Proxy) keepAlive() bool { return !p.conns.Closing() && !p.releasing.Load() }

// Shutdown stops accepting (closing every listener given to Serve), closes
// client connections idle between requests, lets requests in flight finish
// (their connections close after the response) and then closes the pooled
// backend connections. When ctx ends first it closes everything, waits for
// the connection goroutines and returns ctx.Err().
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.conns.Close((*clientConn).closeIfIdle)
	// GOAWAY to HTTP/2 clients; each connection closes once its streams
	// are done. Returns at once: it tracks no connection itself.
	p.h2base.Shutdown(ctx)

	var err error
	select {
	case <-p.conns.Drained():
	case <-ctx.Done():
		p.killed.Store(true)
		p.cancelDial()
		n := p.conns.Each((*clientConn).kill)
		p.killUpstreams()
		p.snap.Load().log.Info("drain deadline passed, closed remaining connections", "connections", n)
		<-p.conns.Drained()
		err = ctx.Err()
	}
	p.poolsMu.Lock()
	pools := make([]*hostPool, 0, len(p.pools))
	for _, hp := range p.pools {
		pools = append(pools, hp)
	}
	p.poolsMu.Unlock()
	for _, hp := range pools {
		hp.retire()
	}
	p.setPoller(p.snap.Load(), false)
	return err
}

// CloseBackend closes every connection to b, pooled or carrying a request
// (a backend removed without quiescence), and returns how many it closed.
// A client whose request was in flight on one sees its connection closed,
// or a 502 if no byte of the response had reached it.
func (p *Proxy) CloseBackend(b *balancer.Backend) int {
	p.poolsMu.Lock()
	hp := p.pools[b]
	p.poolsMu.Unlock()
	if hp == nil {
		return 0
	}
	return hp.closeAll()
}

// killUpstreams closes every backend connection, in use or not.
func (p *Proxy) killUpstreams() {
	p.poolsMu.Lock()
	pools := make([]*hostPool, 0, len(p.pools))
	for _, hp := range p.pools {
		pools = append(pools, hp)
	}
	p.poolsMu.Unlock()
	for _, hp := range pools {
		hp.closeAll()
	}
}

// track registers c, or refuses it once Shutdown has begun.
func (p *Proxy) track(c *clientConn) bool {
	if !p.conns.Add(c) {
		return false
	}
	p.active.Add(1)
	return true
}

func (p *Proxy) untrack(c *clientConn) {
	p.active.Add(-1)
	p.conns.Remove(c)
}

// serveConn serves one accepted connection from start to close.
func (p *Proxy) serveConn(c *clientConn) {
	defer p.untrack(c)
	defer c.free()
	s := p.snap.Load()
	if s.tls != nil {
		tc := tls.Server(c.nc, s.tls)
		c.tc.nc = tc
		tc.SetDeadline(time.Now().Add(s.headerTimeout))
		if err := tc.Handshake(); err != nil {
			tc.Close()
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.log.Debug("TLS handshake failed", "client", c.client, "error", err)
			}
			return
		}
		tc.SetDeadline(time.Time{})
		c.tls = true
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			p.serveH2(c, tc)
			return
		}
	} else {
		c.tc.nc = c.nc
	}
	c.serve()
}
