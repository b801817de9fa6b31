// Package daemon wires fulcrum together: it turns a config into listeners,
// proxies and services, applies reloads atomically, serves the admin API
// and drains on shutdown.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/health"
	"github.com/fulcrum-lb/fulcrum/internal/l7/accesslog"
)

// Options configure a Daemon.
type Options struct {
	// Load reads the config; called at start and on every reload.
	Load    func() (*config.Config, error)
	Log     *slog.Logger
	Level   *slog.LevelVar // adjusted to the config's log level; may be nil
	Version string
	// Ready, if set, is called once every listener is bound.
	Ready func()
	// Reloading and Reloaded, if set, are called when a reload starts and
	// when it ends, with the config running after it, the hash of its
	// file (as status shows it) and the reload's error (systemd's
	// RELOADING=1, then READY=1). Stopping, if set, is
	// called when shutdown begins. All three run on the Run goroutine.
	Reloading func()
	Reloaded  func(running *config.Config, hash string, err error)
	Stopping  func()
	// HA overrides the privileged pieces of VRRP (tests); zero fields
	// take the real ones.
	HA ha.Deps
	// Director, if set, replaces the kernel director (tests).
	Director NewKernelDirector
}

// Daemon is one running fulcrum node.
type Daemon struct {
	opt Options
	log *slog.Logger

	reloadc chan chan error
	ctlc    chan func()    // runtime changes, run by the Run goroutine
	wg      sync.WaitGroup // serve loops and draining frontends

	monitor  *health.Monitor
	alerts   *alert.Dispatcher
	watches  watchTable
	healthMu sync.Mutex // orders health state copies; see commitHealth

	// The fields below are owned by the Run goroutine; Status reads the
	// published snapshot only.
	serveCtx  context.Context
	backends  map[backendKey]*balancer.Backend
	persist   map[string]*balancer.Persistence
	listeners map[listenKey]*listener
	adminSrv  *adminListener
	// director forwards the services with forwarding direct or tunnel;
	// nil while there is none. directorCfg is the section it runs with.
	director    KernelDirector
	directorCfg config.Director
	// flowSync is the running flow sync, nil if none (flowsync.go);
	// syncer is its Syncer, for the ring hook and Status.
	flowSync *syncRun
	syncer   atomic.Pointer[flowsync.Syncer]
	file     *config.Config // the file as last applied, without the overlay
	overlay  overlay        // runtime changes on top of file
	logs     accessLogs

	ha *ha.Manager // its applier is the Run goroutine
	// adminSync shares runtime admin states with the HA peers.
	adminSync *adminSync

	snap      atomic.Pointer[snapshot]
	adminAddr atomic.Value // string: the admin API's bound address
	token     atomic.Value // string: the bearer token admin actions need
	started   time.Time

	reloadsOK, reloadsFailed atomic.Uint64
	lastReload               atomic.Pointer[reloadResult]
	seen                     atomic.Pointer[fileStamp] // the config file as last read; see autoreload
}

type reloadResult struct {
	at  time.Time
	err string
}

// snapshot is what Status reads: the applied config and its frontends.
type snapshot struct {
	cfg      *config.Config // effective: the file with the runtime overlay
	hash     string         // the file's, without the overlay
	runtime  map[backendKey]string
	removed  map[string][]string // service → addresses removed at runtime
	services []*balancer.Service
	fronts   map[string]*listener // by service name
	// pools are the route pools of http services, by service name.
	pools map[string][]*balancer.Service
	logs  []*accesslog.Writer // the access logs open, by path
	// director is the kernel director; nil while no service uses it.
	director KernelDirector
}

type listenKey struct {
	// network is "tcp" or "udp", the socket kind, or kernel/tcp and
	// kernel/udp for the director's services, which have no socket.
	network string
	addr    netip.AddrPort
}

// listener is a bound socket and the data plane serving it. It lives as
// long as some service listens on its address, across reloads.
type listener struct {
	key      listenKey
	protocol string // the plane serving it: a protocol, or kernel/tcp, kernel/udp
	sock     socket
	front    Frontend // set when the apply that bound it commits
	// failed is set when serving stopped on an error (tracked services).
	failed atomic.Bool
}

type adminListener struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a daemon; Run starts it.
func New(opt Options) *Daemon {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	d := &Daemon{
		opt:       opt,
		log:       opt.Log.With("component", "daemon"),
		reloadc:   make(chan chan error),
		ctlc:      make(chan func()),
		backends:  map[backendKey]*balancer.Backend{},
		persist:   map[string]*balancer.Persistence{},
		listeners: map[listenKey]*listener{},
		logs:      accessLogs{},
	}
	d.adminAddr.Store("")
	d.token.Store("")
	d.monitor = health.NewMonitor(opt.Log.With("component", "health"), d.onHealth)
	d.alerts = alert.NewDispatcher(opt.Log.With("component", "alert"), nil)
	d.adminSync = newAdminSync(opt.Log.With("component", "daemon"))
	d.ha = ha.New(ha.Options{Host: haHost{d}, Alerts: d.alerts, Log: opt.Log, Deps: opt.HA, OnAdmin: d.adminSync.receive})
	return d
}

// Reload asks the Run loop to load and apply the config again and waits
// for the outcome. A failed reload leaves the running config untouched.
func (d *Daemon) Reload(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case d.reloadc <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Alive returns nil once the Run loop has answered, proving it is not
// stuck (systemd's watchdog), or ctx's error.
func (d *Daemon) Alive(ctx context.Context) error {
	return d.do(ctx, func() error { return nil })
}

// Run loads the config, binds every listener and serves until ctx is
// done; then it stops accepting and drains established connections for
// up to shutdown.drain_timeout. hup delivers reload requests (SIGHUP).
func (d *Daemon) Run(ctx context.Context, hup <-chan struct{}) error {
	d.started = time.Now()
	cfg, err := d.load()
	if err != nil {
		return err
	}
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	d.serveCtx = serveCtx
	// The monitor and the alert dispatcher outlive the listeners' drain:
	// they stop last, with the serve context.
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		_ = d.monitor.Run(serveCtx)
	}()
	go func() {
		defer d.wg.Done()
		_ = d.alerts.Run(serveCtx)
	}()
	if err := d.apply(cfg, cfg, overlay{}); err != nil {
		stopServing()
		d.wg.Wait()
		return err
	}
	if d.opt.Ready != nil {
		d.opt.Ready()
	}
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.autoreload(serveCtx)
	}()
	for {
		select {
		case <-ctx.Done():
			if d.opt.Stopping != nil {
				d.opt.Stopping()
			}
			d.shutdown()
			stopServing()
			d.wg.Wait()
			return nil
		case <-hup:
			_ = d.reload()
		case done := <-d.reloadc:
			done <- d.reload()
		case f := <-d.ctlc:
			f()
		case t := <-d.adminSync.in:
			d.applyPeerAdmin(t)
		case <-sweep.C:
			for _, p := range d.persist {
				p.Sweep()
			}
		}
	}
}

func (d *Daemon) reload() error {
	if d.opt.Reloading != nil {
		d.opt.Reloading()
	}
	cfg, err := d.load()
	if err == nil {
		// The file replaces runtime weights and added or removed
		// backends; admin states stay on the backends that remain.
		err = d.apply(cfg, cfg, overlay{})
	}
	res := &reloadResult{at: time.Now()}
	if err != nil {
		res.err = err.Error()
	}
	// The result before the counters: a reader that sees a counter move
	// (the status, a test waiting for the reload) finds its error.
	d.lastReload.Store(res)
	if err != nil {
		d.reloadsFailed.Add(1)
		d.log.Error("reload rejected, running config unchanged", "error", err)
	} else {
		d.reloadsOK.Add(1)
		d.log.Info("reloaded", "services", len(cfg.Services), "config_hash", cfg.Hash())
	}
	if d.opt.Reloaded != nil {
		snap := d.snap.Load()
		d.opt.Reloaded(snap.cfg, snap.hash, err)
	}
	return err
}

// bind opens the socket for k. IP_FREEBIND lets a standby balancer bind a
// virtual IP it does not hold yet, so taking the VIP over needs no restart.
func bind(k listenKey, protocol string) (*listener, error) {
	// KeepAlive -1: accepted connections get no TCP keep-alive probes (the
	// idle timeout ends dead ones), saving four setsockopt calls each.
	lc := net.ListenConfig{KeepAlive: -1, Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if k.addr.Addr().Is6() && !k.addr.Addr().Is4In6() {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	network := k.network + "4"
	if k.addr.Addr().Is6() && !k.addr.Addr().Is4In6() {
		network = k.network + "6"
	}
	l := &listener{key: k, protocol: protocol}
	if k.network == "udp" {
		pc, err := lc.ListenPacket(context.Background(), network, k.addr.String())
		if err != nil {
			return nil, err
		}
		l.sock.pc = pc.(*net.UDPConn)
		return l, nil
	}
	ln, err := lc.Listen(context.Background(), network, k.addr.String())
	if err != nil {
		return nil, err
	}
	l.sock.ln = ln
	return l, nil
}

// shutdown stops every listener and drains the connections in parallel.
func (d *Daemon) shutdown() {
	cfg := d.snap.Load().cfg
	drain := cfg.Shutdown.DrainTimeout.D()
	// The VIPs go first, so that a peer takes the traffic over while the
	// established connections drain here. A group handed over to a peer
	// keeps its VIPs, and the listeners stay open, until the connections
	// on them are done or its handover_timeout passed: the peer relays
	// their packets to us meanwhile.
	d.ha.Stop()
	d.log.Info("shutting down: listeners closed, draining connections", "drain_timeout", drain)
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range d.listeners {
		l.front.StopAccepting()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.front.Drain(ctx)
		}()
	}
	wg.Wait()
	if d.director != nil {
		d.closeDirector()
	}
	d.logs.closeAll()
	if d.adminSrv != nil {
		d.stopAdmin()
	}
	d.log.Info("stopped")
}

func (d *Daemon) setLevel(level string) {
	if d.opt.Level == nil {
		return
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err == nil {
		d.opt.Level.Set(l)
	}
}

// bindAdmin binds the admin listener when its address changed; nil
// listener and nil error mean nothing to do.
func (d *Daemon) bindAdmin(addr string) (net.Listener, error) {
	if addr == "off" || (d.adminSrv != nil && d.adminSrv.addr == addr) {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

func (d *Daemon) startAdmin(addr string, ln net.Listener) {
	if d.adminSrv != nil {
		d.stopAdmin()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &adminListener{addr: addr, cancel: cancel, done: make(chan struct{})}
	srv := admin.New(admin.Options{Source: d, Control: d, Token: d.adminToken, Log: d.opt.Log})
	go func() {
		defer close(a.done)
		if err := srv.Serve(ctx, ln); err != nil {
			d.log.Error("admin API stopped", "error", err)
		}
	}()
	d.adminSrv = a
	d.adminAddr.Store(ln.Addr().String())
	d.log.Info("admin API listening", "listen", ln.Addr().String())
}

func (d *Daemon) stopAdmin() {
	d.adminSrv.cancel()
	<-d.adminSrv.done
	d.adminSrv = nil
	d.adminAddr.Store("")
}

func (d *Daemon) adminToken() string { return d.token.Load().(string) }
