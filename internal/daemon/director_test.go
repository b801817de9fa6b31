package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director"
)

// fakeDirectors records every kernel director a daemon makes.
type fakeDirectors struct {
	mu   sync.Mutex
	all  []*fakeDirector
	fail error // New fails with it when set
}

func (f *fakeDirectors) new(cfg config.Director, _ *slog.Logger) (KernelDirector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	d := &fakeDirector{cfg: cfg, services: map[string]*fakeService{}}
	f.all = append(f.all, d)
	return d, nil
}

// last is the director made last, nil if none.
func (f *fakeDirectors) last() *fakeDirector {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.all) == 0 {
		return nil
	}
	return f.all[len(f.all)-1]
}

func (f *fakeDirectors) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.all)
}

// fakeDirector is a KernelDirector that remembers what it was told.
type fakeDirector struct {
	mu       sync.Mutex
	failAdd  error // AddService fails with it when set
	cfg      config.Director
	applied  int
	closed   bool
	services map[string]*fakeService // programmed, by name
	events   []string
}

var _ KernelDirector = (*fakeDirector)(nil)

func (d *fakeDirector) Apply(cfg config.Director) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg, d.applied = cfg, d.applied+1
	return nil
}

func (d *fakeDirector) AddService(spec director.ServiceSpec, svc *balancer.Service) (KernelService, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("fake director: closed")
	}
	if d.failAdd != nil {
		return nil, d.failAdd
	}
	if _, dup := d.services[spec.Name]; dup {
		return nil, fmt.Errorf("fake director: %s programmed twice", spec.Name)
	}
	s := &fakeService{d: d, spec: spec, svc: svc, counters: map[netip.AddrPort]director.BackendCounters{},
		unreachable: map[netip.AddrPort]string{}}
	d.services[spec.Name] = s
	d.events = append(d.events, "add "+spec.Name)
	return s, nil
}

func (d *fakeDirector) Status() admin.Director {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := admin.Director{FlowEntries: 7, Counters: map[string]uint64{"tx": 40, "passed_no_service": 2}, Services: len(d.services)}
	for _, i := range d.cfg.Interfaces {
		st.Interfaces = append(st.Interfaces, admin.DirectorInterface{Name: i, Mode: "generic"})
	}
	return st
}

func (d *fakeDirector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.events = append(d.events, "close")
	return nil
}

// service returns the programmed service called name, nil if none.
func (d *fakeDirector) service(name string) *fakeService {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.services[name]
}

func (d *fakeDirector) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

type fakeService struct {
	d    *fakeDirector
	spec director.ServiceSpec

	mu        sync.Mutex
	svc       *balancer.Service // as last given
	updates   int
	refreshes int
	syncs     int // Sync calls, counted in refreshes too
	closed    []netip.AddrPort
	counters  map[netip.AddrPort]director.BackendCounters
	// unreachable are the backends the director does not forward to,
	// with why.
	unreachable map[netip.AddrPort]string
}

var _ KernelService = (*fakeService)(nil)

func (s *fakeService) Update(svc *balancer.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svc, s.updates = svc, s.updates+1
	return nil
}

func (s *fakeService) Refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
}

func (s *fakeService) Sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	s.syncs++
}

func (s *fakeService) CloseBackend(b *balancer.Backend) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, b.Addr)
	return 3
}

func (s *fakeService) Remove() error {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if s.d.services[s.spec.Name] == s {
		delete(s.d.services, s.spec.Name)
		s.d.events = append(s.d.events, "remove "+s.spec.Name)
	}
	return nil
}

func (s *fakeService) Counters() director.Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c director.Counters
	for _, b := range s.counters {
		c.Packets += b.Packets
		c.Bytes += b.Bytes
		c.NewFlows += b.NewFlows
	}
	return c
}

func (s *fakeService) BackendCounters(b *balancer.Backend) director.BackendCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters[b.Addr]
}

func (s *fakeService) BackendState(b *balancer.Backend) director.BackendState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if why, ok := s.unreachable[b.Addr]; ok {
		return director.BackendState{Reason: why}
	}
	return director.BackendState{Forwarding: true}
}

func (s *fakeService) setUnreachable(addr, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreachable[netip.MustParseAddrPort(addr)] = why
}

func (s *fakeService) setCounters(addr string, c director.BackendCounters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[netip.MustParseAddrPort(addr)] = c
}

// backends are the addresses and weights of the service last given.
func (s *fakeService) backends() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range slices.Concat(s.svc.Primary(), s.svc.Backup()) {
		out = append(out, fmt.Sprintf("%s w%d %s", b.Addr, b.ConfiguredWeight(), b.AdminState()))
	}
	return out
}

func (s *fakeService) stats() (updates, refreshes int, closed []netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates, s.refreshes, slices.Clone(s.closed)
}

// startDirectorDaemon runs a daemon whose kernel directors are fakes.
func startDirectorDaemon(t *testing.T, yaml string) (*testDaemon, *fakeDirectors) {
	t.Helper()
	f := &fakeDirectors{}
	td := startDaemonOpts(t, yaml, Options{
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Director: f.new,
	})
	return td, f
}

// directorYAML is a config with a director service web on a VIP (no
// socket is bound for it) with the given forwarding and extra keys, and
// a proxied service on proxied.
func directorYAML(adminAddr, forwarding, extra, proxied, backend string) string {
	return fmt.Sprintf(`node: { name: lb1 }
admin: { listen: %q }
director: { interfaces: [lo] }
services:
  - name: web
    listen: 192.0.2.10:80
    forwarding: %s
    scheduler: wrr
    persistence: { timeout: 60s, netmask: 24, group: shop }
%s    backends:
      - { address: 10.0.0.1, weight: 2 }
      - { address: 10.0.0.2:80 }
  - name: proxied
    listen: %s
    scheduler: rr
    backends: [ { address: %s } ]
`, adminAddr, forwarding, extra, proxied, backend)
}

func TestDirectorServicesAreProgrammed(t *testing.T) {
	t.Parallel()
	adminAddr, proxied := freeTCP(t), freeTCP(t)
	td, dirs := startDirectorDaemon(t, directorYAML(adminAddr, "gate", "", proxied, echoBackend(t, "b1")))

	kd := dirs.last()
	if kd == nil {
		t.Fatal("no kernel director was made")
	}
	if got := kd.cfg.Interfaces; !slices.Equal(got, []string{"lo"}) {
		t.Errorf("director interfaces: got %v, want [lo]", got)
	}
	web := kd.service("web")
	if web == nil {
		t.Fatal("service web was not programmed")
	}
	want := director.ServiceSpec{
		Name: "web", VIP: netip.MustParseAddr("192.0.2.10"), Port: 80, Proto: unix.IPPROTO_TCP,
		Mode: director.ModeDirect, Scheduler: "wrr", PersistGroup: "shop", PersistTimeout: time.Minute,
		PersistBits4: 24, PersistBits6: 128, Quiescent: true, RemovalGrace: 10 * time.Second,
	}
	if web.spec != want {
		t.Errorf("spec: got %+v, want %+v", web.spec, want)
	}
	if got, want := web.backends(), []string{"10.0.0.1:80 w2 ready", "10.0.0.2:80 w1 ready"}; !slices.Equal(got, want) {
		t.Errorf("backends: got %v, want %v", got, want)
	}
	if kd.service("proxied") != nil {
		t.Errorf("the proxied service went to the kernel too")
	}
	if got := ask(t, proxied); got != "b1" {
		t.Errorf("proxied service answered %q, want b1", got)
	}

	web.setCounters("10.0.0.1:80", director.BackendCounters{Packets: 10, Bytes: 1000, NewFlows: 2, ActiveFlows: 1})
	web.setCounters("10.0.0.2:80", director.BackendCounters{Packets: 5, Bytes: 300, NewFlows: 1})
	const why = "next hop not resolved yet: no neighbour entry for 10.0.0.2 on eth0"
	web.setUnreachable("10.0.0.2:80", why)
	st := td.d.Status()
	if st.Director == nil || len(st.Director.Interfaces) != 1 || st.Director.Interfaces[0] != (admin.DirectorInterface{Name: "lo", Mode: "generic"}) || st.Director.FlowEntries != 7 {
		t.Errorf("status director: got %+v, want lo generic with 7 flows", st.Director)
	}
	var sweb, sprox *admin.Service
	for i := range st.Services {
		switch st.Services[i].Name {
		case "web":
			sweb = &st.Services[i]
		case "proxied":
			sprox = &st.Services[i]
		}
	}
	if sweb.Forwarding != "direct" || sprox.Forwarding != "proxy" {
		t.Errorf("forwarding: got web %q, proxied %q; want direct, proxy", sweb.Forwarding, sprox.Forwarding)
	}
	if got := sweb.Director; got == nil || *got != (admin.DirectorCounters{Packets: 15, Bytes: 1300, NewFlows: 3}) {
		t.Errorf("web's director counters: got %+v, want 15 packets 1300 bytes 3 new flows", got)
	}
	if got := sweb.Backends[0].Director; got == nil || *got != (admin.DirectorCounters{Packets: 10, Bytes: 1000, NewFlows: 2, ActiveFlows: 1}) {
		t.Errorf("backend 10.0.0.1's director counters: got %+v", got)
	}
	if got := sweb.Backends[1].Director; got == nil || got.NotForwarded != why {
		t.Errorf("backend 10.0.0.2's director state: got %+v, want not forwarded: %s", got, why)
	}
	if sweb.Persistence != nil {
		t.Errorf("web has a proxy persistence table: %+v; the kernel keeps its persistence", sweb.Persistence)
	}
	if sprox.Director != nil || sprox.Backends[0].Director != nil {
		t.Errorf("the proxied service shows director counters")
	}

	m := scrape(t, adminAddr)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fulcrum_director_packets_total", []string{"service", "web", "backend", "10.0.0.1:80"}, 10},
		{"fulcrum_director_bytes_total", []string{"service", "web", "backend", "10.0.0.2:80"}, 300},
		{"fulcrum_director_new_flows_total", []string{"service", "web"}, 3},
		{"fulcrum_director_active_flows", []string{"service", "web", "backend", "10.0.0.1:80"}, 1},
		{"fulcrum_director_backend_forwarding", []string{"service", "web", "backend", "10.0.0.1:80"}, 1},
		{"fulcrum_director_backend_forwarding", []string{"service", "web", "backend", "10.0.0.2:80"}, 0},
		{"fulcrum_director_attached", []string{"interface", "lo", "mode", "generic"}, 1},
		{"fulcrum_director_flow_entries", nil, 7},
		{"fulcrum_director_program_total", []string{"reason", "tx"}, 40},
	} {
		if got := m.sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if !m.has("fulcrum_director_backend_forwarding", "service", "web", "backend", "10.0.0.2:80") {
		t.Errorf("no fulcrum_director_backend_forwarding for the backend the director does not forward to")
	}
	if m.sum("fulcrum_director_packets_total", "service", "proxied") != 0 {
		t.Errorf("the proxied service has director metrics")
	}
}

func TestDirectorReload(t *testing.T) {
	t.Parallel()
	adminAddr, proxied := freeTCP(t), freeTCP(t)
	b1 := echoBackend(t, "b1")
	td, dirs := startDirectorDaemon(t, directorYAML(adminAddr, "direct", "", proxied, b1))
	kd := dirs.last()
	first := kd.service("web")

	// direct → tunnel: the same VIP and port, programmed afresh.
	if err := td.reload(directorYAML(adminAddr, "ipip", "", proxied, b1)); err != nil {
		t.Fatal(err)
	}
	web := kd.service("web")
	if web == nil || web == first || web.spec.Mode != director.ModeTunnel {
		t.Fatalf("after forwarding: ipip, web is %+v; want programmed afresh in tunnel mode", web)
	}
	if dirs.count() != 1 {
		t.Errorf("the reload made %d directors, want the running one kept", dirs.count())
	}
	kd.mu.Lock()
	applied := kd.applied
	kd.mu.Unlock()
	if applied != 0 {
		t.Errorf("the director was applied %d times, want 0: its section did not change", applied)
	}
	withTunnelSource := strings.Replace(directorYAML(adminAddr, "ipip", "", proxied, b1), "interfaces: [lo]", "interfaces: [lo], tunnel_source: 192.0.2.1", 1)
	if err := td.reload(withTunnelSource); err != nil {
		t.Fatal(err)
	}
	kd.mu.Lock()
	applied, src := kd.applied, kd.cfg.TunnelSource
	kd.mu.Unlock()
	if applied != 1 || src != "192.0.2.1" {
		t.Errorf("after a tunnel_source reload: applied %d times with %q, want once with 192.0.2.1", applied, src)
	}

	// A weight in the file reaches the programmed service.
	if err := td.reload(strings.Replace(directorYAML(adminAddr, "ipip", "", proxied, b1), "weight: 2", "weight: 5", 1)); err != nil {
		t.Fatal(err)
	}
	if got := web.backends()[0]; got != "10.0.0.1:80 w5 ready" {
		t.Errorf("after the weight reload: got %s, want 10.0.0.1:80 w5 ready", got)
	}

	// The director's sizes are fixed while it runs.
	bigger := strings.Replace(directorYAML(adminAddr, "ipip", "", proxied, b1), "interfaces: [lo]", "interfaces: [lo], flow_table_size: 2048", 1)
	if err := td.reload(bigger); err == nil || !strings.Contains(err.Error(), "take effect at a restart") {
		t.Errorf("reload changing flow_table_size: got %v, want an error saying it takes a restart", err)
	}
	if kd.service("web") != web {
		t.Errorf("the rejected reload changed the programmed service")
	}

	// web moves to the proxy: out of the kernel, which is closed as no
	// director service is left; the proxied socket serves it.
	webAddr := freeTCP(t)
	toProxy := fmt.Sprintf("node: { name: lb1 }\nadmin: { listen: %q }\nservices:\n%s%s", adminAddr,
		svcYAML("web", webAddr, echoBackend(t, "w1")), svcYAML("proxied", proxied, b1))
	if err := td.reload(toProxy); err != nil {
		t.Fatal(err)
	}
	if kd.service("web") != nil || !kd.isClosed() {
		t.Errorf("after moving web to the proxy: programmed %v, closed %v; want removed and the director closed", kd.service("web") != nil, kd.isClosed())
	}
	if got := ask(t, webAddr); got != "w1" {
		t.Errorf("web by the proxy answered %q, want w1", got)
	}
	if td.d.Status().Director != nil {
		t.Errorf("status shows a director while none runs")
	}

	// And back: a new director.
	if err := td.reload(directorYAML(adminAddr, "tun", "", proxied, b1)); err != nil {
		t.Fatal(err)
	}
	if dirs.count() != 2 || dirs.last().service("web") == nil {
		t.Errorf("after moving web back: %d directors, web programmed %v; want a second director with web", dirs.count(), dirs.last().service("web") != nil)
	}
	if canListen(webAddr) == false {
		t.Errorf("web's proxy socket %s is still open", webAddr)
	}
}

func TestDirectorRuntimeControl(t *testing.T) {
	t.Parallel()
	adminAddr, proxied := freeTCP(t), freeTCP(t)
	td, dirs := startDirectorDaemon(t, directorYAML(adminAddr, "direct", "    quiescent: false\n    removal_grace: 50ms\n", proxied, echoBackend(t, "b1")))
	web := dirs.last().service("web")
	updates, refreshes, _ := web.stats()

	if _, err := td.d.SetAdminState(ctx(t), "web", "10.0.0.1:80", "drain"); err != nil {
		t.Fatal(err)
	}
	if _, r, _ := web.stats(); r <= refreshes {
		t.Errorf("drain: refreshes %d, want more than %d", r, refreshes)
	}
	web.mu.Lock()
	syncs := web.syncs
	web.mu.Unlock()
	if syncs == 0 {
		t.Error("drain: the kernel's rings were not synced before SetAdminState returned (Refresh alone does not wait)")
	}
	if got := web.backends()[0]; got != "10.0.0.1:80 w2 drain" {
		t.Errorf("drain: got %s, want 10.0.0.1:80 w2 drain", got)
	}

	if _, err := td.d.SetWeight(ctx(t), "web", "10.0.0.2:80", 7); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := web.stats(); u <= updates {
		t.Errorf("weight: updates %d, want more than %d", u, updates)
	}
	if got := web.backends()[1]; got != "10.0.0.2:80 w7 ready" {
		t.Errorf("weight: got %s, want 10.0.0.2:80 w7 ready", got)
	}

	// The address alone takes the service's port.
	if _, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: "10.0.0.3"}); err != nil {
		t.Fatal(err)
	}
	if got := web.backends(); len(got) != 3 || got[2] != "10.0.0.3:80 w1 ready" {
		t.Errorf("add: got %v, want 10.0.0.3:80 added", got)
	}
	if _, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: "10.0.0.4:8080"}); !errors.Is(err, admin.ErrInvalid) || !strings.Contains(err.Error(), "cannot change ports") {
		t.Errorf("adding a backend on another port: got %v, want invalid: cannot change ports", err)
	}

	if _, err := td.d.AddBackend(ctx(t), "proxied", admin.NewBackend{Address: "10.0.0.3"}); !errors.Is(err, admin.ErrInvalid) {
		t.Errorf("adding a backend without a port to a proxied service: got %v, want invalid", err)
	}
	if _, err := td.d.RemoveBackend(ctx(t), "web", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if got := web.backends(); len(got) != 2 || strings.HasPrefix(got[0], "10.0.0.1") {
		t.Errorf("remove: got %v, want 10.0.0.1 gone", got)
	}
	// Not quiescent: after removal_grace its flows are moved.
	waitUntil(t, "the removed backend's flows closed", func() bool {
		_, _, closed := web.stats()
		return slices.Contains(closed, netip.MustParseAddrPort("10.0.0.1:80"))
	})
}

// TestDirectorHealthRefreshes: a health transition of a director
// service's backend reaches its programmed service at once.
func TestDirectorHealthRefreshes(t *testing.T) {
	t.Parallel()
	// The backend's check connects to a listener the test closes.
	ln := echoListener(t, "b")
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	yaml := fmt.Sprintf(`node: { name: lb1 }
admin: { listen: "off" }
director: { interfaces: [lo] }
services:
  - name: web
    listen: 192.0.2.10:%d
    forwarding: direct
    health: { type: tcp, interval: 50ms, timeout: 200ms, fall: 1, rise: 1 }
    backends: [ { address: 127.0.0.1 } ]
`, port)
	td, dirs := startDirectorDaemon(t, yaml)
	web := dirs.last().service("web")
	healthy := func() bool { return td.d.Status().Services[0].Backends[0].Healthy }
	waitUntil(t, "the first check passed", func() bool {
		st := td.d.Status().Services[0].Backends[0]
		return st.Health != nil && st.Health.Checks > 0 && st.Healthy
	})
	_, before, _ := web.stats()
	ln.Close()
	waitUntil(t, "the backend down", func() bool { return !healthy() })
	waitUntil(t, "a refresh after the transition", func() bool {
		_, r, _ := web.stats()
		return r > before
	})
}

// TestDirectorStartFails: a kernel that cannot run the director, or an
// interface this host lacks, stops the start with the reason; nothing
// falls back to the proxy, and nothing is loaded for a missing interface.
func TestDirectorStartFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, ifaces string
		fail         error
		want         string
	}{
		{"no XDP", "[lo]", errors.New("xdp: BPF XDP programs: not supported by this kernel"), "not supported by this kernel"},
		{"missing interface", "[nosuch0]", nil, "test.yaml:3:26: director.interfaces[0]: nosuch0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeDirectors{fail: tt.fail}
			yaml := strings.Replace(directorYAML("off", "direct", "", freeTCP(t), echoBackend(t, "b1")), "[lo]", tt.ifaces, 1)
			d := New(Options{
				Load:     func() (*config.Config, error) { return config.Parse("test.yaml", []byte(yaml)) },
				Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
				Director: f.new,
			})
			err := d.Run(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: got %v, want an error containing %q", err, tt.want)
			}
			if f.count() != 0 {
				t.Errorf("%d directors made, want none", f.count())
			}
		})
	}
}

// TestDirectorClosedAtShutdown: stopping the daemon removes the services
// and closes the director (the program is detached).
func TestDirectorClosedAtShutdown(t *testing.T) {
	t.Parallel()
	f := &fakeDirectors{}
	yaml := directorYAML("off", "direct", "", freeTCP(t), echoBackend(t, "b1"))
	ready := make(chan struct{})
	d := New(Options{
		Load:     func() (*config.Config, error) { return config.Parse("test.yaml", []byte(yaml)) },
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Director: f.new,
		Ready:    func() { close(ready) },
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, nil) }()
	<-ready
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	kd := f.last()
	kd.mu.Lock()
	defer kd.mu.Unlock()
	if want := []string{"add web", "remove web", "close"}; !slices.Equal(kd.events, want) {
		t.Errorf("events: got %v, want %v", kd.events, want)
	}
}

// TestDirectorReprogramFails: a change that cannot be programmed (the
// kernel refuses the service afresh) fails the service's listener, which
// HA tracking counts as a failed service.
func TestDirectorReprogramFails(t *testing.T) {
	t.Parallel()
	adminAddr, proxied := freeTCP(t), freeTCP(t)
	b1 := echoBackend(t, "b1")
	td, dirs := startDirectorDaemon(t, directorYAML(adminAddr, "direct", "", proxied, b1))
	if ok, why := (haHost{td.d}).ServiceAlive("web"); !ok {
		t.Fatalf("web before: not alive (%s)", why)
	}
	kd := dirs.last()
	kd.mu.Lock()
	kd.failAdd = errors.New("a director programs at most 64 services")
	kd.mu.Unlock()
	if err := td.reload(directorYAML(adminAddr, "tunnel", "", proxied, b1)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "web's listener failed", func() bool {
		ok, why := (haHost{td.d}).ServiceAlive("web")
		return !ok && why == "listener failed"
	})
	if ok, why := (haHost{td.d}).ServiceAlive("proxied"); !ok {
		t.Errorf("proxied: not alive (%s), want alive", why)
	}
}
