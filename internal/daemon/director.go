package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director"
	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// KernelDirector is what the daemon uses of the kernel data plane
// (*director.Director behind an adapter; a fake in tests). One exists per
// daemon while some service has forwarding direct or tunnel.
//
// Threading: Apply and AddService are called by the Run goroutine only;
// Status from any goroutine; Close once, by the Run goroutine, after every
// service was removed.
type KernelDirector interface {
	// Apply changes the node settings (interfaces, xdp mode, tunnel
	// source) of the running director.
	Apply(cfg config.Director) error
	// AddService programs a service; it forwards from then on.
	AddService(spec director.ServiceSpec, svc *balancer.Service) (KernelService, error)
	// Status reports the interfaces, the flow table and the program's
	// counters.
	Status() admin.Director
	// Close detaches the program from every interface and frees it.
	Close() error
	// FlowSync returns what the flow sync works with: the kernel's flow
	// and persistence tables, its feed of new flows and the resolver of
	// services and backends. From then on ringChanged hears the id of
	// every service ring written, with no lock held (flowsync.Syncer's
	// RingChanged).
	FlowSync(ringChanged func(id uint32)) (flowsync.Table, flowsync.Events, flowsync.Resolver)
}

// KernelService is one service programmed into the kernel. Its methods
// are safe for concurrent use.
type KernelService interface {
	// Update gives the service new backends, weights or states.
	Update(svc *balancer.Service) error
	// Refresh re-reads the backends' health and admin states soon;
	// Sync does it before it returns.
	Refresh()
	Sync()
	// CloseBackend moves the flows of b elsewhere and returns how many
	// there were.
	CloseBackend(b *balancer.Backend) int
	// Remove deletes the service from the kernel.
	Remove() error
	Counters() director.Counters
	BackendCounters(b *balancer.Backend) director.BackendCounters
	// BackendState says whether the director forwards to b, and why not.
	BackendState(b *balancer.Backend) director.BackendState
}

// NewKernelDirector makes the kernel director from the config's director
// section; Options.Director replaces it in tests.
type NewKernelDirector func(cfg config.Director, log *slog.Logger) (KernelDirector, error)

// newDirector makes the kernel director: Options.Director's, or the real
// one when this kernel can run it.
func (d *Daemon) newDirector(cfg config.Director, log *slog.Logger) (KernelDirector, error) {
	open := d.opt.Director
	if open == nil {
		if err := xdp.Supported(); err != nil {
			return nil, fmt.Errorf("director: %w", err)
		}
		open = openDirector
	}
	kd, err := open(cfg, log)
	if err != nil {
		return nil, err
	}
	return &closableDirector{KernelDirector: kd}, nil
}

// closableDirector lets Status readers, which use the published
// snapshot from any goroutine, race with nothing when the Run goroutine
// closes the director: Status after Close reports it closed.
type closableDirector struct {
	KernelDirector
	mu     sync.RWMutex
	closed bool
}

func (c *closableDirector) Status() admin.Director {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return admin.Director{Interfaces: []admin.DirectorInterface{}, Error: "closed"}
	}
	return c.KernelDirector.Status()
}

func (c *closableDirector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.KernelDirector.Close()
}

// openDirector loads and attaches the kernel director.
func openDirector(cfg config.Director, log *slog.Logger) (KernelDirector, error) {
	d, err := director.New(cfg, log)
	if err != nil {
		return nil, err
	}
	return kernelDirector{d}, nil
}

// kernelDirector adapts *director.Director to KernelDirector.
type kernelDirector struct{ d *director.Director }

var _ KernelDirector = kernelDirector{}

func (k kernelDirector) Apply(cfg config.Director) error { return k.d.Apply(cfg) }
func (k kernelDirector) Close() error                    { return k.d.Close() }

func (k kernelDirector) FlowSync(ringChanged func(uint32)) (flowsync.Table, flowsync.Events, flowsync.Resolver) {
	k.d.OnRingChange(ringChanged)
	p := k.d.Program()
	return p, p, k.d
}

func (k kernelDirector) AddService(spec director.ServiceSpec, svc *balancer.Service) (KernelService, error) {
	s, err := k.d.AddService(spec, svc)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return s, nil
}

func (k kernelDirector) Status() admin.Director {
	st := k.d.Status()
	out := admin.Director{
		Interfaces:  []admin.DirectorInterface{},
		FlowEntries: st.FlowEntries,
		Counters:    st.Counters,
		Services:    st.Services,
		Slots:       st.Slots,
		Error:       st.Error,
	}
	for _, i := range st.Interfaces {
		out.Interfaces = append(out.Interfaces, admin.DirectorInterface{Name: i.Name, Mode: i.Mode})
	}
	return out
}

var _ KernelService = (*director.Service)(nil)

// Data planes of the services the kernel forwards; see dataPlanes.
const (
	kernelTCP = "kernel/tcp"
	kernelUDP = "kernel/udp"
)

// planeOf names the data plane of the service named svc in plan p: its
// protocol for the proxies, kernel/tcp or kernel/udp for the director.
func (p *plan) planeOf(svc *balancer.Service) string {
	if _, ok := p.kernel[svc.Name]; ok {
		return "kernel/" + svc.Protocol
	}
	return svc.Protocol
}

// kernelSpec is what the director needs of the director service sc
// besides its backends; sc is valid.
func kernelSpec(sc *config.Service) director.ServiceSpec {
	ap := sc.ListenAddr()
	spec := director.ServiceSpec{
		Name:         sc.Name,
		VIP:          ap.Addr().Unmap(),
		Port:         ap.Port(),
		Proto:        unix.IPPROTO_TCP,
		Mode:         director.ModeDirect,
		Scheduler:    sc.Scheduler,
		HashPort:     sc.HashPort,
		Quiescent:    sc.QuiescentValue(),
		RemovalGrace: sc.RemovalGrace.D(),
	}
	if sc.Protocol == config.ProtoUDP {
		spec.Proto = unix.IPPROTO_UDP
	}
	if sc.Forwarding == config.ForwardTunnel {
		spec.Mode = director.ModeTunnel
	}
	if ps := sc.Persistence; ps != nil {
		spec.PersistGroup = ps.Group
		spec.PersistTimeout = ps.Timeout.D()
		spec.PersistBits4, spec.PersistBits6 = ps.Netmask, ps.Netmask6
	}
	return spec
}

// directorStage makes the plan's kernel director: the running one, with
// the new node settings at commit, or a new one when the first director
// service comes. Its prepare runs before the listeners' (which program
// the services into it); directorCloseStage closes it after them when no
// director service remains.
func (d *Daemon) directorStage(p *plan, cfg *config.Config) stage {
	fresh := false
	return stage{
		prepare: func() error {
			if len(p.kernel) == 0 {
				return nil
			}
			if d.director != nil {
				if err := d.checkDirectorChange(cfg); err != nil {
					return err
				}
				p.director = d.director
				return nil
			}
			if err := checkInterfaces(cfg); err != nil {
				return err
			}
			kd, err := d.newDirector(cfg.Director, d.opt.Log) // it names its component
			if err != nil {
				return err
			}
			p.director, fresh = kd, true
			return nil
		},
		rollback: func() {
			if fresh {
				if err := p.director.Close(); err != nil {
					d.log.Error("closing the kernel director of a rejected config", "error", err)
				}
			}
		},
		commit: func() {
			if p.director == nil {
				return
			}
			if !fresh && !reflect.DeepEqual(cfg.Director, d.directorCfg) {
				if err := d.director.Apply(cfg.Director); err != nil {
					d.log.Error("director settings partly applied", "error", err)
				}
			}
			d.director, d.directorCfg = p.director, cfg.Director
		},
	}
}

// directorCloseStage closes the kernel director once no service uses it;
// its services were removed when their listeners drained.
func (d *Daemon) directorCloseStage(p *plan) stage {
	return stage{commit: func() {
		if len(p.kernel) == 0 && d.director != nil {
			d.closeDirector()
		}
	}}
}

func (d *Daemon) closeDirector() {
	d.stopSync(true)
	if err := d.director.Close(); err != nil {
		d.log.Error("closing the kernel director", "error", err)
	} else {
		d.log.Info("kernel director closed: the program is detached from every interface")
	}
	d.director, d.directorCfg = nil, config.Director{}
}

// checkDirectorChange refuses node settings the running program cannot
// take: its tables are sized when it loads.
func (d *Daemon) checkDirectorChange(cfg *config.Config) error {
	cur, next := d.directorCfg, cfg.Director
	if next.FlowTableSize != cur.FlowTableSize || next.FlowTimeout != cur.FlowTimeout {
		return fmt.Errorf("%s: director: flow_table_size and flow_timeout take effect at a restart (running: %d, %s)", where(cfg, "director"), cur.FlowTableSize, cur.FlowTimeout)
	}
	return checkInterfaces(cfg)
}

// checkInterfaces reports the director interfaces this host lacks.
func checkInterfaces(cfg *config.Config) error {
	var errs []error
	for i, name := range cfg.Director.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			path := "director.interfaces[" + strconv.Itoa(i) + "]"
			errs = append(errs, fmt.Errorf("%s: %s: %s: %w", where(cfg, path), path, name, err))
		}
	}
	return errors.Join(errs...)
}

// where is file:line:column of the value at path.
func where(cfg *config.Config, path string) string {
	line, col := cfg.Pos(path)
	return fmt.Sprintf("%s:%d:%d", cfg.File, line, col)
}

// openKernel programs the director service svc: the counterpart of
// binding a socket. Without a director (its stage failed and reported
// why) it programs nothing.
func (p *plan) openKernel(k listenKey, plane string, svc *balancer.Service) (*listener, error) {
	if p.director == nil {
		return nil, errNoDirector
	}
	ks, err := p.director.AddService(p.kernel[svc.Name], svc)
	if err != nil {
		return nil, err
	}
	return &listener{key: k, protocol: plane, sock: socket{kernel: ks}}, nil
}

var errNoDirector = errors.New("no kernel director")

// refreshKernel tells the director services of b that its health
// changed, so that their rings follow at once rather than at the
// director's next periodic look; it does not wait for them.
func (d *Daemon) refreshKernel(b *balancer.Backend) { d.eachKernelService(b, KernelService.Refresh) }

// syncKernel makes the rings of b's director services follow its admin
// state before it returns: the operator who drained b is answered once no
// new flow can reach it.
func (d *Daemon) syncKernel(b *balancer.Backend) { d.eachKernelService(b, KernelService.Sync) }

// eachKernelService calls fn on every director service that has b.
func (d *Daemon) eachKernelService(b *balancer.Backend, fn func(KernelService)) {
	snap := d.snap.Load()
	if snap == nil {
		return
	}
	for _, svc := range snap.services {
		l := snap.fronts[svc.Name]
		if l == nil || l.sock.kernel == nil || !snap.owns(svc, b) {
			continue
		}
		if kf, ok := l.front.(*kernelFrontend); ok {
			kf.with(fn)
		}
	}
}

// refreshKernelFronts refreshes every director service among fronts.
func refreshKernelFronts(fronts map[string]*listener) {
	for _, l := range fronts {
		if kf, ok := l.front.(*kernelFrontend); ok {
			kf.refresh()
		}
	}
}

// kernelSnapshot is what the frontend of a director service needs besides
// the service: its spec and the director that programs it.
type kernelSnapshot struct {
	spec director.ServiceSpec
	dir  KernelDirector
}

// kernelFrontend adapts a service programmed into the kernel director. It
// has no socket: packets to its VIP and port are forwarded by the XDP
// program before any socket sees them, so it serves nothing itself and
// no connection ever ends here.
type kernelFrontend struct {
	log  *slog.Logger
	stop chan struct{}
	once sync.Once
	// failc carries why the service could not be programmed again after
	// a change: Serve returns it, which marks the listener failed (HA
	// tracking sees it).
	failc chan error

	// mu is held for reading while a method of svc runs, and for writing
	// to replace or remove it: once StopAccepting returns, no reader
	// (a status, a grace timer) still uses the removed service, and the
	// director can be closed.
	mu   sync.RWMutex
	svc  KernelService // nil once removed
	spec director.ServiceSpec
}

var _ Frontend = (*kernelFrontend)(nil)

func newKernelFrontend(s socket, snap ServiceSnapshot, log *slog.Logger) Frontend {
	return &kernelFrontend{
		log:   log.With("component", "director", "service", snap.Service.Name),
		stop:  make(chan struct{}),
		failc: make(chan error, 1),
		svc:   s.kernel,
		spec:  snap.Kernel.spec,
	}
}

// Serve waits: the kernel does the serving. It returns an error when a
// change could not be programmed: the service is then out of the kernel
// until a restart, as a proxy whose socket failed is.
func (f *kernelFrontend) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-f.stop:
	case err := <-f.failc:
		return err
	}
	return nil
}

// Update gives the kernel the service's new backends; a changed spec
// (forwarding direct ↔ tunnel, scheduler, persistence) programs the
// service afresh under the same VIP and port.
func (f *kernelFrontend) Update(snap ServiceSnapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.svc == nil {
		return
	}
	if k := snap.Kernel; k != nil && k.spec != f.spec {
		if err := f.svc.Remove(); err != nil {
			f.log.Error("removing the service to program it afresh", "error", err)
		}
		f.svc = nil
		ks, err := k.dir.AddService(k.spec, snap.Service)
		if err != nil {
			select {
			case f.failc <- fmt.Errorf("programming the changed service: %w (its packets go to the kernel's stack)", err):
			default:
			}
			return
		}
		f.svc, f.spec = ks, k.spec
		return
	}
	if err := f.svc.Update(snap.Service); err != nil {
		f.log.Error("updating the kernel's service", "error", err)
	}
}

// StopAccepting removes the service from the kernel: its VIP and port
// are no longer forwarded.
func (f *kernelFrontend) StopAccepting() {
	f.once.Do(func() { close(f.stop) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.svc == nil {
		return
	}
	if err := f.svc.Remove(); err != nil {
		f.log.Error("removing the service from the kernel", "error", err)
	}
	f.svc = nil
}

// Drain returns at once: the flows of a director service run between
// the client and the backend, and do not end here.
func (f *kernelFrontend) Drain(context.Context) error {
	f.StopAccepting()
	return nil
}

// with calls fn with the programmed service, unless it was removed.
func (f *kernelFrontend) with(fn func(KernelService)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.svc != nil {
		fn(f.svc)
	}
}

func (f *kernelFrontend) CloseBackend(b *balancer.Backend) (n int) {
	f.with(func(ks KernelService) { n = ks.CloseBackend(b) })
	return n
}

// Active is 0: a hand-over need not wait for the flows of a director
// service, since they do not end at this node. The backend answers the
// client itself, and the node that takes the VIP keeps each flow on its
// backend: the same Maglev ring on every node, and the flow sync for the
// flows the ring would now send elsewhere.
func (f *kernelFrontend) Active() int { return 0 }

// SetReleasing changes nothing: there is no keep-alive to turn off.
func (f *kernelFrontend) SetReleasing(bool) {}

func (f *kernelFrontend) refresh() { f.with(KernelService.Refresh) }

func (f *kernelFrontend) Status(s *admin.Service) {
	f.with(func(ks KernelService) {
		c := ks.Counters()
		s.Director = &admin.DirectorCounters{Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.NewFlows}
	})
}

func (f *kernelFrontend) BackendStatus(b *balancer.Backend, s *admin.Backend) {
	f.with(func(ks KernelService) {
		c := ks.BackendCounters(b)
		s.Director = &admin.DirectorCounters{Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.NewFlows, ActiveFlows: c.ActiveFlows}
		if st := ks.BackendState(b); !st.Forwarding {
			s.Director.NotForwarded = st.Reason
		}
	})
}
