package daemon

import (
	"context"
	"log/slog"
	"net"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/l4"
	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
)

// Frontend is the data plane that carries one listening socket's
// traffic: the L4 TCP proxy, the UDP proxy and the HTTP engine are its
// adapters below; another data plane (a kernel director) is one more
// adapter and one more entry in dataPlanes. The daemon talks to data
// planes only through this interface.
//
// Threading: Serve runs on a goroutine of its own from the commit that
// creates the frontend until its socket is closed or ctx ends. Every other
// method may be called from any goroutine at any time after creation,
// concurrently with Serve and with each other — the Run goroutine
// (Update, StopAccepting), grace timers (CloseBackend), HA hand-overs
// (Active, SetReleasing) and Status readers (Status, BackendStatus). Drain
// is called once, after StopAccepting, and may run while Serve returns.
// No method blocks on traffic except Drain.
type Frontend interface {
	// Serve serves the socket the frontend was created with until ctx is
	// done or the socket is closed; it returns nil then, or the error
	// that stopped it.
	Serve(ctx context.Context) error
	// Update makes snap the service of new connections (or requests);
	// those in flight finish with the one they started with.
	Update(snap ServiceSnapshot)
	// StopAccepting closes the socket to new clients; established ones
	// continue until Drain.
	StopAccepting()
	// Drain waits for the established clients to finish, closing those
	// left when ctx ends, and releases the socket.
	Drain(ctx context.Context) error
	// CloseBackend closes the client traffic relayed to b (a backend
	// taken out of a service that is not quiescent) and returns how many
	// connections it closed. A data plane without connections (UDP)
	// closes none: its sessions leave an evicted backend at their next
	// datagram.
	CloseBackend(b *balancer.Backend) int
	// Active is the number of client connections open that a hand-over
	// must wait for (a UDP session is not one).
	Active() int
	// SetReleasing turns keep-alive off (true) while the node hands its
	// VIPs over, so that clients move at their next request, and back on.
	SetReleasing(on bool)
	// Status fills the service's counters.
	Status(s *admin.Service)
	// BackendStatus fills what this data plane measures of backend b.
	BackendStatus(b *balancer.Backend, s *admin.Backend)
}

// ServiceSnapshot is what a frontend serves: the service and, for http,
// the engine config with its route pools. Immutable once handed over.
type ServiceSnapshot struct {
	Service *balancer.Service
	HTTP    *proxy.Config // http services only
	// Kernel is set for services with forwarding direct or tunnel.
	Kernel *kernelSnapshot
}

// socket is a bound listening socket, before a frontend serves it; for a
// service the kernel forwards, the service programmed into the director.
type socket struct {
	ln     net.Listener  // tcp
	pc     *net.UDPConn  // udp
	kernel KernelService // forwarding direct or tunnel
}

// close releases a socket that never served (a rolled-back apply).
func (s socket) close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
	if s.kernel != nil {
		_ = s.kernel.Remove() // a service that has served no flow yet
	}
}

// dataPlane is how a service protocol is served: the socket kind it
// listens on and the adapter that serves it.
type dataPlane struct {
	network string // "tcp" or "udp"
	new     func(s socket, snap ServiceSnapshot, log *slog.Logger) Frontend
}

// dataPlanes is the one place that maps a service's plane (see
// plan.planeOf: its protocol, or kernel/ and its protocol with forwarding
// direct or tunnel) to its data plane. The director's planes have
// networks of their own: a service moving between the proxy and the
// kernel gets a new listener, and the old one drains.
var dataPlanes = map[string]dataPlane{
	config.ProtoTCP:  {network: "tcp", new: newTCPFrontend},
	config.ProtoUDP:  {network: "udp", new: newUDPFrontend},
	config.ProtoHTTP: {network: "tcp", new: newHTTPFrontend},
	kernelTCP:        {network: kernelTCP, new: newKernelFrontend},
	kernelUDP:        {network: kernelUDP, new: newKernelFrontend},
}

// l4Counters converts the L4 proxies' counters.
func l4Counters(s l4.Stats) admin.Counters {
	return admin.Counters{
		Accepted:         s.Accepted,
		Active:           s.Active,
		NoBackend:        s.NoBackend,
		Refused:          s.Refused,
		ConnectFailures:  s.ConnectFailures,
		ProxyHeaderError: s.ProxyHeaderErrors,
		Dropped:          s.Dropped,
		Evicted:          s.Evicted,
		EvictedPerClient: s.EvictedPerClient,
		SendErrors:       s.SendErrors,
		IdleTimeouts:     s.IdleTimeouts,
	}
}

// tcpFrontend adapts l4.TCPProxy.
type tcpFrontend struct {
	p  *l4.TCPProxy
	ln net.Listener
}

var _ Frontend = (*tcpFrontend)(nil)

func newTCPFrontend(s socket, snap ServiceSnapshot, log *slog.Logger) Frontend {
	return &tcpFrontend{p: l4.NewTCP(snap.Service, log.With("component", "l4", "service", snap.Service.Name)), ln: s.ln}
}

func (f *tcpFrontend) Serve(ctx context.Context) error      { return f.p.Serve(ctx, f.ln) }
func (f *tcpFrontend) Update(snap ServiceSnapshot)          { f.p.Update(snap.Service) }
func (f *tcpFrontend) StopAccepting()                       { f.ln.Close() }
func (f *tcpFrontend) Drain(ctx context.Context) error      { return f.p.Shutdown(ctx) }
func (f *tcpFrontend) CloseBackend(b *balancer.Backend) int { return f.p.CloseBackend(b) }
func (f *tcpFrontend) Active() int                          { return f.p.Active() }
func (f *tcpFrontend) SetReleasing(bool)                    {}
func (f *tcpFrontend) Status(s *admin.Service)              { s.Counters = l4Counters(f.p.Stats()) }
func (f *tcpFrontend) BackendStatus(b *balancer.Backend, s *admin.Backend) {
	s.Lifetimes = histogram(b.ConnectionLifetimes())
}

// udpFrontend adapts l4.UDPProxy. Its socket also carries the replies of
// established sessions, so it stays open until Drain.
type udpFrontend struct {
	p  *l4.UDPProxy
	pc *net.UDPConn
}

var _ Frontend = (*udpFrontend)(nil)

func newUDPFrontend(s socket, snap ServiceSnapshot, log *slog.Logger) Frontend {
	return &udpFrontend{p: l4.NewUDP(snap.Service, log.With("component", "l4", "service", snap.Service.Name)), pc: s.pc}
}

func (f *udpFrontend) Serve(ctx context.Context) error { return f.p.Serve(ctx, f.pc) }
func (f *udpFrontend) Update(snap ServiceSnapshot)     { f.p.Update(snap.Service) }
func (f *udpFrontend) StopAccepting()                  {}
func (f *udpFrontend) Drain(ctx context.Context) error {
	err := f.p.Shutdown(ctx)
	f.pc.Close()
	return err
}
func (f *udpFrontend) CloseBackend(*balancer.Backend) int { return 0 }
func (f *udpFrontend) Active() int                        { return 0 }
func (f *udpFrontend) SetReleasing(bool)                  {}
func (f *udpFrontend) Status(s *admin.Service)            { s.Counters = l4Counters(f.p.Stats()) }

// BackendStatus adds nothing: sessions end by idle timeout, so their
// lifetimes say little.
func (f *udpFrontend) BackendStatus(*balancer.Backend, *admin.Backend) {}

// httpFrontend adapts the HTTP engine (proxy.Proxy).
type httpFrontend struct {
	p  *proxy.Proxy
	ln net.Listener
}

var _ Frontend = (*httpFrontend)(nil)

// newHTTPFrontend logs through snap.HTTP.Log, which apply sets.
func newHTTPFrontend(s socket, snap ServiceSnapshot, _ *slog.Logger) Frontend {
	return &httpFrontend{p: proxy.New(snap.HTTP), ln: s.ln}
}

func (f *httpFrontend) Serve(ctx context.Context) error      { return f.p.Serve(ctx, f.ln) }
func (f *httpFrontend) Update(snap ServiceSnapshot)          { f.p.Update(snap.HTTP) }
func (f *httpFrontend) StopAccepting()                       { f.ln.Close() }
func (f *httpFrontend) Drain(ctx context.Context) error      { return f.p.Shutdown(ctx) }
func (f *httpFrontend) CloseBackend(b *balancer.Backend) int { return f.p.CloseBackend(b) }
func (f *httpFrontend) Active() int                          { return f.p.Active() }
func (f *httpFrontend) SetReleasing(on bool)                 { f.p.SetReleasing(on) }
func (f *httpFrontend) Status(s *admin.Service) {
	hs := f.p.Stats()
	s.Counters = admin.Counters{Accepted: hs.Connections, Active: int64(hs.ActiveConnections), Refused: hs.Refused}
	s.HTTP = &admin.HTTPCounters{
		Requests:         hs.Requests,
		BadRequests:      hs.BadRequests,
		Status1xx:        hs.Status[1],
		Status2xx:        hs.Status[2],
		Status3xx:        hs.Status[3],
		Status4xx:        hs.Status[4],
		Status5xx:        hs.Status[5],
		UpstreamConnects: hs.UpstreamConnects,
		UpstreamReuses:   hs.UpstreamReuses,
		Aborted:          hs.Aborted,
		Poller:           hs.Poller.String(),
		PollerError:      hs.PollerError,
	}
}

// BackendStatus adds the engine's request counts and latencies.
func (f *httpFrontend) BackendStatus(b *balancer.Backend, s *admin.Backend) {
	r := b.RequestStats()
	s.Requests, s.Errors, s.Latency = r.Requests, r.Errors, histogram(r.Latency)
}
