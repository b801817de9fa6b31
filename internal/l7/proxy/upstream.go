package proxy

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// upstreamMaxIdle is how long a pooled backend connection may sit unused
// before it is closed instead of reused: below the keep-alive timeout of
// common servers (nginx 75s, Go 90s... Apache's 5s is covered by the retry
// of a failed reuse) so a reused connection is rarely one the server is
// closing at that very moment.
const upstreamMaxIdle = 50 * time.Second

// Buffer sizes. An upstream reader must hold a whole response head.
const (
	upstreamReadSize  = http1.DefaultMaxHeaderBytes
	upstreamWriteSize = 8 << 10
	clientWriteSize   = 8 << 10
)

var (
	readerPool32k = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, http1.DefaultMaxHeaderBytes) }}
	writerPool8k  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

func getReader(r *timedConn, size int) *bufio.Reader {
	if size != http1.DefaultMaxHeaderBytes {
		return bufio.NewReaderSize(r, size)
	}
	br := readerPool32k.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	if br.Size() == http1.DefaultMaxHeaderBytes {
		br.Reset(nil)
		readerPool32k.Put(br)
	}
}

func getWriter(w *timedConn) *bufio.Writer {
	bw := writerPool8k.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool8k.Put(bw)
}

// hostPool holds the idle keep-alive connections to one backend, most
// recently used first (the warmest socket, and the idle ones at the bottom
// age out), and knows every open connection so CloseBackend can close
// those carrying requests too.
type hostPool struct {
	p    *Proxy
	b    *balancer.Backend
	addr string // b.Addr as a string, once: for dialling and access logs

	mu      sync.Mutex
	idle    []*upConn
	all     map[*upConn]struct{}
	retired bool // no longer in the config, or shut down: pool nothing more
	// dialing counts the connections being dialled: not in all yet, but
	// a retired pool with one must stay where CloseBackend finds it.
	dialing int
	// closings counts closeAll calls; a dial that began before one ends
	// by closing its connection, which closeAll could not see.
	closings uint64
	// testAfterDial, when set, runs between a dial's connect and the
	// connection's registration: the window the two counters above close.
	testAfterDial func()
}

func newHostPool(p *Proxy, b *balancer.Backend) *hostPool {
	return &hostPool{p: p, b: b, addr: b.Addr.String(), all: map[*upConn]struct{}{}}
}

// upConn is one connection to a backend. The goroutine relaying a request
// over it owns it; while it is idle the pool does.
type upConn struct {
	hp     *hostPool
	tc     timedConn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// killed: closed by CloseBackend or a forced Shutdown; its owner
	// discards it.
	killed atomic.Bool
	peek   peeker
}

// get pops the most recently used idle connection, or returns nil. now
// is about the current time, to tell aged-out connections.
func (hp *hostPool) get(now time.Time) *upConn {
	for {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			return nil
		}
		u := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		if now.Sub(u.idleAt) < upstreamMaxIdle && !u.killed.Load() {
			if u.br == nil {
				u.br = getReader(&u.tc, upstreamReadSize)
				u.bw = getWriter(&u.tc)
			}
			return u
		}
		u.close()
	}
}

// put returns u to the pool, or closes it when the pool is full or
// retired.
//
// It also closes the oldest idle connection when it has aged out: the
// bottom of the stack is only reached when traffic is high again, so a
// burst's surplus connections would otherwise stay open, and the backend
// would close them, leaving them in CLOSE_WAIT here.
//
// A pooled connection holds no buffers: the caller checked nothing is
// buffered, and get takes new ones from their pools.
func (hp *hostPool) put(u *upConn, maxIdle int, now time.Time) {
	u.idleAt = now
	if u.br != nil {
		putReader(u.br)
		putWriter(u.bw)
		u.br, u.bw = nil, nil
	}
	var old *upConn
	hp.mu.Lock()
	if hp.retired || len(hp.idle) >= maxIdle || u.killed.Load() {
		hp.mu.Unlock()
		u.close()
		return
	}
	if len(hp.idle) > 0 && u.idleAt.Sub(hp.idle[0].idleAt) > upstreamMaxIdle {
		old = hp.idle[0]
		n := copy(hp.idle, hp.idle[1:])
		hp.idle[n] = nil
		hp.idle = hp.idle[:n]
	}
	hp.idle = append(hp.idle, u)
	hp.mu.Unlock()
	if old != nil {
		old.close()
	}
}

// dial opens a new connection to the backend.
func (hp *hostPool) dial(ctx context.Context, timeout time.Duration) (*upConn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// No TCP keep-alive probes (as HAProxy without option tcpka): the
	// idle bound of the pool ends unused connections.
	d := net.Dialer{KeepAlive: -1}
	hp.mu.Lock()
	hp.dialing++
	closings, afterDial := hp.closings, hp.testAfterDial
	hp.mu.Unlock()
	nc, err := d.DialContext(ctx, "tcp", hp.addr)
	if err != nil {
		hp.mu.Lock()
		hp.dialing--
		hp.mu.Unlock()
		return nil, err
	}
	if afterDial != nil {
		afterDial()
	}
	u := &upConn{hp: hp}
	u.tc.nc = nc
	u.tc.usePoller(hp.p.poller.Load())
	u.br = getReader(&u.tc, upstreamReadSize)
	u.bw = getWriter(&u.tc)
	hp.mu.Lock()
	hp.dialing--
	if (hp.retired && hp.p.conns.Closing()) || hp.closings != closings {
		// Shut down, or CloseBackend ran while we dialled: the backend
		// must not get a connection it was meant to lose.
		hp.mu.Unlock()
		u.free()
		return nil, net.ErrClosed
	}
	hp.all[u] = struct{}{}
	hp.mu.Unlock()
	return u, nil
}

// close closes u and forgets it. Only its owner calls it.
func (u *upConn) close() {
	hp := u.hp
	hp.mu.Lock()
	delete(hp.all, u)
	hp.mu.Unlock()
	u.free()
}

func (u *upConn) free() {
	u.tc.nc.Close()
	u.tc.releasePoller()
	if u.br != nil {
		putReader(u.br)
		putWriter(u.bw)
		u.br, u.bw = nil, nil
	}
}

// closeAll closes every connection of the pool and returns how many. The
// idle ones are freed here; the owners of the others see their I/O fail.
func (hp *hostPool) closeAll() int {
	hp.mu.Lock()
	n := len(hp.all)
	hp.closings++
	idle := hp.idle
	hp.idle = nil
	for u := range hp.all {
		u.killed.Store(true)
		u.tc.nc.Close()
		u.tc.wakeReader()
	}
	for _, u := range idle {
		delete(hp.all, u)
	}
	hp.mu.Unlock()
	for _, u := range idle {
		u.free()
	}
	return n
}

// retire closes the idle connections and makes the pool keep no more: the
// backend left the configuration, or the proxy shut down. It returns how
// many connections remain open, carrying requests, or being dialled.
func (hp *hostPool) retire() int {
	hp.mu.Lock()
	hp.retired = true
	idle := hp.idle
	hp.idle = nil
	for _, u := range idle {
		delete(hp.all, u)
	}
	n := len(hp.all) + hp.dialing
	hp.mu.Unlock()
	for _, u := range idle {
		u.free()
	}
	return n
}

func (hp *hostPool) isRetired() bool {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return hp.retired
}
