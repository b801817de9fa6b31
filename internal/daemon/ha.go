package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// HADeps are the privileged pieces an HA group needs; tests replace them
// with fakes.
type HADeps struct {
	// HelloListen opens the hello socket of one family on port (see
	// package hello); nil turns the hello off. It defaults to the real
	// one only together with the real Listen, so that a test's fake
	// groups send nothing on the machine's network.
	HelloListen func(is6 bool, port int) (net.PacketConn, error)
	// Listen opens the VRRP socket.
	Listen func(vrrp.ConnOptions) (vrrp.Conn, error)
	// Announcer builds what adds the VIPs and sends gratuitous ARP/NA.
	Announcer func(g *config.HAGroup, log *slog.Logger) (vrrp.Announcer, error)
	// PrimaryAddr is our address on the interface, the election's
	// tie-break.
	PrimaryAddr func(ifname string, f vrrp.Family) (netip.Addr, error)
	// LinkUp reports whether a tracked interface is up.
	LinkUp func(ifname string) (bool, error)
	// Handover builds a group's hand-over rules (relay and quiet); nil
	// with a fake Announcer means none: connections in flight at a
	// hand-over are then reset, as without nftables.
	Handover func(g *config.HAGroup) Handover
}

// ErrNoGroup is returned by ReleaseGroup for an unknown group.
var ErrNoGroup = errors.New("no such ha group")

// haGroup is one running VRRP instance and what tracks it.
type haGroup struct {
	name   string
	key    string // hash of its config: an unchanged group survives a reload
	cfg    config.HAGroup
	vips   []netip.Prefix
	inst   *vrrp.Instance
	conn   vrrp.Conn
	ann    vrrp.Announcer
	cancel context.CancelFunc
	done   chan struct{}

	// authKey is the secret of auth_key_file, nil without one; the hello
	// derives its own key from it.
	authKey []byte

	// Tracking results, written by the tracker, read by the applier and
	// Status.
	track atomic.Pointer[trackResult]
}

type trackResult struct {
	delta int // how much to lower the priority
	fault bool
	items []trackItem
}

type trackItem struct {
	kind, name string
	ok         bool
	weight     int
	detail     string
}

// groupKey fingerprints a group's config together with this node's name
// (its priority depends on it).
func groupKey(node string, g *config.HAGroup) string {
	b, _ := json.Marshal(struct {
		Node string
		G    *config.HAGroup
	}{node, g})
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

// prepareGroup opens the socket and builds the instance of g without
// starting it: everything that can fail for a reload.
func (d *Daemon) prepareGroup(cfg *config.Config, g *config.HAGroup) (*haGroup, error) {
	deps := d.opt.HA
	vips := g.VIPPrefixes()
	fam := vrrp.IPv4
	if vips[0].Addr().Is6() {
		fam = vrrp.IPv6
	}
	local, err := deps.PrimaryAddr(g.Interface, fam)
	if err != nil {
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	key := g.AuthKey // read and checked by config.Load
	var peers []netip.Addr
	for _, p := range g.UnicastPeers {
		peers = append(peers, netip.MustParseAddr(p))
	}
	addrs := make([]netip.Addr, len(vips))
	for i, v := range vips {
		addrs[i] = v.Addr()
	}
	vcfg := vrrp.Config{
		VRID:         uint8(g.VRID),
		Priority:     uint8(g.Priority[cfg.Node.Name]),
		Interval:     g.AdvertInterval.D(),
		DownAdverts:  g.MasterDownAdverts,
		Preempt:      g.PreemptValue(),
		PreemptDelay: g.PreemptDelay.D(),
		VIPs:         addrs,
		Accept:       true,
		LocalAddr:    local,
	}
	if err := vcfg.Validate(); err != nil {
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	log := d.opt.Log.With("component", "vrrp", "group", g.Name)
	ann, err := deps.Announcer(g, log)
	if err != nil {
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	if deps.Handover != nil {
		ann = &handoverAnnouncer{
			Announcer: ann,
			ho:        deps.Handover(g),
			busy:      d.vipBusy(vips),
			release:   d.vipRelease(vips),
			timeout:   g.HandoverTimeout.D(),
			log:       log,
			holds:     &d.holds,
		}
	}
	conn, err := deps.Listen(vrrp.ConnOptions{Interface: g.Interface, Family: fam, Source: local, Peers: peers, AuthKey: key})
	if err != nil {
		closeAnnouncer(ann)
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	hg := &haGroup{
		name: g.Name,
		key:  groupKey(cfg.Node.Name, g),
		cfg:  *g,
		vips: vips,
		conn: conn,
		ann:  ann,
		inst: vrrp.New(vcfg, conn, ann, log),
		done: make(chan struct{}),
	}
	hg.authKey = key
	hg.track.Store(&trackResult{})
	return hg, nil
}

// start runs the instance, its event reader and its tracker.
func (d *Daemon) startGroup(hg *haGroup) {
	ctx, cancel := context.WithCancel(context.Background())
	hg.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		// A VIP left on the interface by a crashed run would answer
		// traffic on a backup: start clean, as keepalived does.
		addrs := make([]netip.Addr, len(hg.vips))
		for i, v := range hg.vips {
			addrs[i] = v.Addr()
		}
		if err := hg.ann.Release(ctx, addrs); err != nil {
			d.log.Warn("removing leftover VIPs", "group", hg.name, "error", err)
		}
		if ho, ok := hg.ann.(*handoverAnnouncer); ok {
			ho.clear(ctx)
		}
		if err := hg.inst.Run(ctx); err != nil {
			d.log.Error("ha group stopped", "group", hg.name, "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		d.haEvents(ctx, hg)
	}()
	go func() {
		defer wg.Done()
		d.trackGroup(ctx, hg)
	}()
	go func() {
		wg.Wait()
		hg.close()
		close(hg.done)
	}()
}

// close releases the group's socket and announcer.
func (hg *haGroup) close() {
	hg.conn.Close()
	closeAnnouncer(hg.ann)
}

// closeAnnouncer releases an announcer's sockets, if it holds any (the
// netif one does; fakes need not).
func closeAnnouncer(ann vrrp.Announcer) {
	if c, ok := ann.(interface{ Close() error }); ok {
		c.Close()
	}
}

// stopGroup shuts a group down: a master sends priority 0 and releases
// its VIPs, so a peer takes over after its skew time.
func (hg *haGroup) stop() {
	hg.cancel()
	<-hg.done
}

// vipBusy reports whether connections to the VIPs are in flight on this
// node: a service listening on one of them, or on every address, has one.
func (d *Daemon) vipBusy(vips []netip.Prefix) func() bool {
	return func() bool {
		busy := false
		d.vipListeners(vips, func(l *listener) { busy = busy || l.active() > 0 })
		return busy
	}
}

// vipRelease turns keep-alive off or on for the HTTP services on the VIPs
// (proxy.SetReleasing).
func (d *Daemon) vipRelease(vips []netip.Prefix) func(on bool) {
	return func(on bool) {
		d.vipListeners(vips, func(l *listener) {
			if l.http != nil {
				l.http.SetReleasing(on)
			}
		})
	}
}

// vipListeners calls fn for each listener of the running config on one of
// the VIPs or on every address.
func (d *Daemon) vipListeners(vips []netip.Prefix, fn func(*listener)) {
	snap := d.snap.Load()
	if snap == nil {
		return
	}
	for _, l := range snap.fronts {
		a := l.key.addr.Addr().Unmap()
		on := a.IsUnspecified()
		for _, v := range vips {
			on = on || v.Addr() == a
		}
		if on {
			fn(l)
		}
	}
}

// haEvents turns the instance's transitions into alerts and notify runs.
func (d *Daemon) haEvents(ctx context.Context, hg *haGroup) {
	notify := make(chan vrrp.Transition, 16)
	go func() {
		for tr := range notify {
			d.runNotify(hg, tr)
		}
	}()
	defer close(notify)
	for {
		select {
		case <-ctx.Done():
			// Drain what the shutdown itself produced.
			for {
				select {
				case tr := <-hg.inst.Events():
					d.haEvent(hg, tr, notify)
				default:
					return
				}
			}
		case tr := <-hg.inst.Events():
			d.haEvent(hg, tr, notify)
		}
	}
}

func (d *Daemon) haEvent(hg *haGroup, tr vrrp.Transition, notify chan<- vrrp.Transition) {
	if ep := d.helloEP.Load(); ep != nil {
		ep.Kick() // peers see the new state now, not at the next tick
	}
	extra := map[string]string{"group": hg.name, "vrid": fmt.Sprint(tr.VRID)}
	if tr.Master.IsValid() {
		extra["master"] = tr.Master.String()
	}
	d.alerts.Notify(alert.Event{
		Kind:      "ha",
		State:     strings.ToLower(tr.To.String()),
		PrevState: strings.ToLower(tr.From.String()),
		Reason:    tr.Reason,
		Node:      d.nodeName(),
		Time:      tr.At,
		Extra:     extra,
	})
	if len(hg.cfg.Notify) > 0 {
		select {
		case notify <- tr:
		default:
			d.log.Warn("ha notify queue full, transition not passed to the notify command", "group", hg.name)
		}
	}
}

// runNotify runs the group's notify command like keepalived's notify
// scripts, bounded to 10s.
func (d *Daemon) runNotify(hg *haGroup, tr vrrp.Transition) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hg.cfg.Notify[0], hg.cfg.Notify[1:]...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"FULCRUM_GROUP=" + hg.name,
		"FULCRUM_VRID=" + fmt.Sprint(tr.VRID),
		"FULCRUM_STATE=" + strings.ToLower(tr.To.String()),
		"FULCRUM_PREV_STATE=" + strings.ToLower(tr.From.String()),
		"FULCRUM_REASON=" + tr.Reason,
		"FULCRUM_NODE=" + d.nodeName(),
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		if len(out) > 512 {
			out = out[:512]
		}
		d.log.Warn("ha notify command failed", "group", hg.name, "error", err, "output", string(out))
	}
}

// ReleaseGroup hands the group's VIPs over to a peer (`fulcrum ha
// release`). It is safe from any goroutine.
func (d *Daemon) ReleaseGroup(ctx context.Context, name string) error {
	groups := d.haGroups.Load()
	if groups == nil {
		return ErrNoGroup
	}
	hg := (*groups)[name]
	if hg == nil {
		return fmt.Errorf("%w %q", ErrNoGroup, name)
	}
	return hg.inst.Release(ctx)
}

// applyHA reconciles the running groups with cfg: unchanged groups keep
// running untouched; changed ones are replaced. prepare opens what the new
// config needs; commit swaps. A failed prepare leaves everything as it
// was.
func (d *Daemon) prepareHA(cfg *config.Config) (map[string]*haGroup, error) {
	next := map[string]*haGroup{}
	var errs []error
	for i := range cfg.HA.Groups {
		g := &cfg.HA.Groups[i]
		if old := d.ha[g.Name]; old != nil && old.key == groupKey(cfg.Node.Name, g) {
			next[g.Name] = old
			continue
		}
		hg, err := d.prepareGroup(cfg, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next[g.Name] = hg
	}
	if len(errs) > 0 {
		for name, hg := range next {
			if d.ha[name] != hg {
				hg.close()
			}
		}
		return nil, errors.Join(errs...)
	}
	return next, nil
}

func (d *Daemon) commitHA(cfg *config.Config, next map[string]*haGroup) {
	for name, old := range d.ha {
		if next[name] != old {
			d.log.Info("stopping ha group", "group", name)
			old.stop()
		}
	}
	for name, hg := range next {
		if d.ha[name] != hg {
			d.log.Info("starting ha group", "group", name, "vrid", hg.cfg.VRID, "interface", hg.cfg.Interface)
			d.startGroup(hg)
		}
	}
	d.ha = next
	d.haGroups.Store(&next)
	d.syncGroups.Store(&cfg.HA.SyncGroups)
}

// advertiseHash gives every group's socket the running config's hash:
// authenticated adverts carry its first bytes, so that peers can see
// whether they run the same config. Run goroutine only.
func (d *Daemon) advertiseHash() {
	sum, err := hex.DecodeString(d.snap.Load().hash)
	if err != nil {
		return
	}
	for _, hg := range d.ha {
		if h, ok := hg.conn.(vrrp.ConfigHasher); ok {
			h.SetConfigHash(sum)
		}
	}
	if d.hello.ep != nil {
		d.hello.ep.SetConfigHash(d.snap.Load().hash)
	}
}

// stopHA stops every group (shutdown).
func (d *Daemon) stopHA() {
	var wg sync.WaitGroup
	for _, hg := range d.ha {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hg.stop()
		}()
	}
	wg.Wait()
	d.ha = nil
}
