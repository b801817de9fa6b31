package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/connset"
)

// TCPProxy relays the TCP connections accepted on one listen address to
// the backends of a service.
//
// All methods are safe for concurrent use. Update may be called at any
// time, Serve once per listener (several listeners may share a proxy),
// Shutdown once at the end.
type TCPProxy struct {
	svc atomic.Pointer[balancer.Service]
	log *slog.Logger
	counters

	// conns holds the listeners and connections. Connection goroutines
	// take its lock once when they start and once when they end; the
	// per-byte path never does.
	conns *connset.Set[*tcpConn]
}

// NewTCP returns a proxy for svc. log is used as given; the caller scopes
// it with component and service.
func NewTCP(svc *balancer.Service, log *slog.Logger) *TCPProxy {
	p := &TCPProxy{log: log, conns: connset.New[*tcpConn]()}
	p.svc.Store(svc)
	return p
}

// Update makes svc the snapshot for new connections. Established
// connections keep the backend they have.
func (p *TCPProxy) Update(svc *balancer.Service) { p.svc.Store(svc) }

// Active is the number of connections open.
func (p *TCPProxy) Active() int { return int(p.active.Load()) }

// Stats reads the proxy's counters.
func (p *TCPProxy) Stats() Stats { return p.counters.stats() }

// Serve accepts connections on ln and proxies each in its own goroutine
// until ctx is done, ln is closed or Shutdown is called; then it returns
// nil, closing ln. It backs off on temporary accept errors (out of file
// descriptors) as net/http does, and returns any other accept error.
// Established connections outlive Serve (Shutdown drains them); a
// connection still dialling its backend when ctx ends is closed.
func (p *TCPProxy) Serve(ctx context.Context, ln net.Listener) error {
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
				return fmt.Errorf("l4: accept on %v: %w", ln.Addr(), err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed, retrying", "error", err, "delay", delay)
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
		c := &tcpConn{client: conn}
		if !p.track(c) {
			conn.Close()
			continue
		}
		go p.handle(ctx, c)
	}
}

// Shutdown stops accepting (closing every listener given to Serve) and
// waits for the open connections to finish. When ctx ends first it closes
// them all, waits for their goroutines and returns ctx.Err().
func (p *TCPProxy) Shutdown(ctx context.Context) error {
	p.conns.Close(nil)
	select {
	case <-p.conns.Drained():
		return nil
	case <-ctx.Done():
	}
	n := p.conns.Each((*tcpConn).kill)
	p.log.Info("drain deadline passed, closed remaining connections", "connections", n)
	// Every socket and pending dial of those connections is closed or
	// cancelled, so their goroutines end without waiting on any peer.
	<-p.conns.Drained()
	return ctx.Err()
}

// CloseBackend closes every connection relaying to b — a backend removed
// after failing its health checks, once its grace period is over — and
// returns how many it closed.
func (p *TCPProxy) CloseBackend(b *balancer.Backend) int {
	var victims []*tcpConn
	p.conns.Each(func(c *tcpConn) {
		if c.relaysTo(b) {
			victims = append(victims, c)
		}
	})
	for _, c := range victims {
		c.kill()
	}
	return len(victims)
}

// track registers c, or refuses it once Shutdown has begun: a connection
// that raced with the listener's close is not served.
func (p *TCPProxy) track(c *tcpConn) bool {
	if !p.conns.Add(c) {
		return false
	}
	p.active.Add(1)
	return true
}

func (p *TCPProxy) untrack(c *tcpConn) {
	p.active.Add(-1)
	p.conns.Remove(c)
}
