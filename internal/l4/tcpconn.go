package l4

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/proxyproto"
)

// tcpConn is one proxied connection. Its handler goroutine owns it; kill
// may be called from any goroutine (Shutdown, the idle watch, the other
// copy direction).
type tcpConn struct {
	client net.Conn

	mu         sync.Mutex
	backend    net.Conn
	target     *balancer.Backend // whose socket backend is
	cancelDial context.CancelFunc
	killed     bool

	// ended counts relay directions that reached EOF: the last one skips
	// its half-close, as both sockets are closed right after anyway (one
	// shutdown(2) less per connection).
	ended atomic.Int32
}

// relaysTo reports whether c is connected to b.
func (c *tcpConn) relaysTo(b *balancer.Backend) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target == b
}

// errKilled ends a connection's setup when it was killed meanwhile.
var errKilled = errors.New("connection closed by the proxy")

// kill closes both sockets and cancels a dial in progress. Every blocked
// read, write, splice or dial of the connection returns promptly.
func (c *tcpConn) kill() {
	c.mu.Lock()
	c.killed = true
	backend, cancel := c.backend, c.cancelDial
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.client.Close()
	if backend != nil {
		backend.Close()
	}
}

// setDial records the cancel function of the dial about to start (nil
// when it ended); false means the connection was killed.
func (c *tcpConn) setDial(cancel context.CancelFunc) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelDial = cancel
	return !c.killed
}

// setBackend records the backend socket so kill closes it too; false
// means the connection was killed and the caller must close conn itself.
func (c *tcpConn) setBackend(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		return false
	}
	c.backend = conn
	return true
}

func (c *tcpConn) isKilled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// handle serves one accepted connection from start to close.
func (p *TCPProxy) handle(ctx context.Context, c *tcpConn) {
	defer p.untrack(c)
	defer c.client.Close()

	svc := p.svc.Load()
	src, dst := addrPortOf(c.client.RemoteAddr()), addrPortOf(c.client.LocalAddr())
	if svc.AcceptProxy {
		h, err := readProxyHeader(c.client, svc.ProxyHeaderTimeout)
		if err != nil {
			if c.isKilled() {
				return // Shutdown closed it: not the client's fault
			}
			p.proxyHeaderErrors.Add(1)
			if p.debugging(ctx) {
				p.log.Debug("PROXY header rejected, connection closed", "client", src, "error", err)
			}
			return
		}
		if h.HasAddrs() {
			src, dst = h.Source, h.Dest
		}
	}

	b, backend := p.connect(ctx, svc, c, src, dst)
	if backend == nil {
		return
	}
	c.mu.Lock()
	c.target = b
	c.mu.Unlock()
	defer backend.Close()
	if p.debugging(ctx) {
		p.log.Debug("connection open", "client", src, "backend", b.Addr)
	}

	opened := time.Now()
	in, out, idle := relay(svc.IdleTimeout, c, backend)
	b.Release(in, out)
	b.ObserveConnection(time.Since(opened))
	if idle {
		p.idleTimeouts.Add(1)
	}
	if p.debugging(ctx) {
		p.log.Debug("connection closed", "client", src, "backend", b.Addr, "bytes_in", in, "bytes_out", out, "idle_timeout", idle)
	}
}

func readProxyHeader(conn net.Conn, timeout time.Duration) (proxyproto.Header, error) {
	if timeout > 0 {
		conn.SetReadDeadline(time.Now().Add(timeout))
		defer conn.SetReadDeadline(time.Time{})
	}
	return proxyproto.ReadHeader(conn)
}

// connect picks a backend and connects to it, trying up to svc.Retries
// other backends after a failed attempt, and sends the outbound PROXY
// header. It returns the backend, acquired, with its socket; or nil after
// counting why the client gets no backend.
func (p *TCPProxy) connect(ctx context.Context, svc *balancer.Service, c *tcpConn, src, dst netip.AddrPort) (*balancer.Backend, net.Conn) {
	var hdr []byte
	switch svc.SendProxy {
	case "v1":
		hdr = proxyproto.AppendV1(make([]byte, 0, proxyproto.MaxV1Len), src, dst)
	case "v2":
		hdr = proxyproto.AppendV2(make([]byte, 0, proxyproto.MaxV2Len), src, dst)
	}
	vip := dst.Addr().Unmap()
	var tried balancer.Tried
	for attempt := 0; attempt <= svc.Retries; attempt++ {
		b, err := svc.PickFlow(src, vip, &tried)
		if err != nil {
			p.noBackend.Add(1)
			if attempt == 0 {
				p.refused.Add(1)
			}
			if p.debugging(ctx) {
				p.log.Debug("no backend available, connection closed", "client", src, "attempts", attempt)
			}
			return nil, nil
		}
		// Acquired before the dial so that least-connection schedulers see
		// connections still being set up.
		b.Acquire()
		conn, err := dialBackend(ctx, svc.ConnectTimeout, c, b.Addr, hdr)
		if err == nil {
			b.Connected()
			return b, conn
		}
		b.Release(0, 0)
		if ctx.Err() != nil || c.isKilled() {
			return nil, nil // shutting down: not the backend's fault
		}
		b.ConnectFailed()
		p.connectFailures.Add(1)
		tried.Add(b)
		if p.debugging(ctx) {
			p.log.Debug("connect to backend failed", "client", src, "backend", b.Addr, "attempt", attempt+1, "error", err)
		}
	}
	p.noBackend.Add(1)
	if p.debugging(ctx) {
		p.log.Debug("every connect attempt failed, connection closed", "client", src, "attempts", svc.Retries+1)
	}
	return nil, nil
}

func dialBackend(ctx context.Context, timeout time.Duration, c *tcpConn, addr netip.AddrPort, hdr []byte) (net.Conn, error) {
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if !c.setDial(cancel) {
		return nil, errKilled
	}
	// No TCP keep-alive probes, as HAProxy without option tcpka: the idle
	// timeout ends dead connections, and the probes cost 4 setsockopt
	// calls per socket.
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	c.setDial(nil)
	if err != nil {
		return nil, err
	}
	if !c.setBackend(conn) {
		conn.Close()
		return nil, errKilled
	}
	if len(hdr) > 0 {
		if _, err := conn.Write(hdr); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// relay copies both directions until both have ended and returns the
// bytes moved client→backend (in) and backend→client (out), and whether
// the idle timeout ended the connection.
//
// client and backend go to io.Copy as they are: when both are
// *net.TCPConn the copy is a splice(2) on Linux. Only when the kernel
// cannot report progress for the idle timeout are the sources wrapped in
// a counter, and then splice was not possible anyway.
func relay(idle time.Duration, c *tcpConn, backend net.Conn) (in, out int64, timedOut bool) {
	var fromClient, fromBackend io.Reader = c.client, backend
	var idled atomic.Bool
	if idle > 0 {
		progress, ok := kernelProgress(c.client, backend)
		if !ok {
			moved := new(atomic.Uint64)
			fromClient = countingReader{r: c.client, n: moved}
			fromBackend = countingReader{r: backend, n: moved}
			progress = func() (uint64, bool) { return moved.Load(), true }
		}
		w := startIdleWatch(idle, progress, func() {
			idled.Store(true)
			c.kill()
		})
		defer w.stop()
	}
	done := make(chan int64, 1)
	go func() { done <- c.pipe(c.client, fromBackend) }()
	in = c.pipe(backend, fromClient)
	out = <-done
	return in, out, idled.Load()
}

// pipe copies src to dst. At EOF it half-closes dst, so dst's peer sees
// the end of the stream while the other direction carries on. Any other
// ending (reset, error, kill) closes both sockets, which ends the other
// direction too: otherwise a peer that never sends could keep it forever.
func (c *tcpConn) pipe(dst net.Conn, src io.Reader) int64 {
	var n int64
	var err error
	if d, ok := dst.(*net.TCPConn); ok {
		// What io.Copy would reach through src.WriteTo and a wrapper that
		// costs an allocation: ReadFrom splices when src is a *net.TCPConn.
		n, err = d.ReadFrom(src)
	} else {
		n, err = io.Copy(dst, src)
	}
	if err == nil {
		if c.ended.Add(1) == 2 {
			return n // the other direction is done: close will send the FIN
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return n
		}
	}
	c.kill()
	return n
}

// debugging guards per-connection logs: checked at the call site, it
// spares building their arguments, which allocates.
func (p *TCPProxy) debugging(ctx context.Context) bool {
	return p.log.Enabled(ctx, slog.LevelDebug)
}

// addrPortOf returns a socket address as an AddrPort, or the zero value
// for an address that is not IP (which makes PROXY headers say UNKNOWN).
func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}
