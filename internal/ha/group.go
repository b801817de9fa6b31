package ha

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/alert"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/runner"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// group is one running VRRP instance and what tracks it.
type group struct {
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
	// peers remembers the peers heard, to tell one gone (watchPeers).
	peers peerWatch
	// started is when the group started: Host.PreemptHold holds its
	// preemption back until MaxPreemptHold after it (preempthold.go).
	started  time.Time
	holdOver atomic.Bool // the bound was reached, and logged
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

// CheckHost reports why group g could not start on this host — its
// interface is missing or has no address of the VIPs' family to send
// adverts from — as starting it would. `fulcrum check` calls it.
func CheckHost(g *config.HAGroup) error {
	_, _, err := localAddr(vrrp.PrimaryAddr, g)
	return err
}

// localAddr is the family of g's VIPs and g's address on its interface,
// the source of its adverts.
func localAddr(primary func(string, vrrp.Family) (netip.Addr, error), g *config.HAGroup) (vrrp.Family, netip.Addr, error) {
	fam := vrrp.IPv4
	if g.VIPPrefixes()[0].Addr().Is6() {
		fam = vrrp.IPv6
	}
	local, err := primary(g.Interface, fam)
	if err != nil {
		return fam, netip.Addr{}, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	return fam, local, nil
}

// prepareGroup opens the socket and builds the instance of g without
// starting it: everything that can fail for a reload.
func (m *Manager) prepareGroup(cfg *config.Config, g *config.HAGroup) (*group, error) {
	deps := m.opt.Deps
	vips := g.VIPPrefixes()
	fam, local, err := localAddr(deps.PrimaryAddr, g)
	if err != nil {
		return nil, err
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
		InitDead:     g.InitDead.D(),
		VIPs:         addrs,
		Accept:       true,
		LocalAddr:    local,
	}
	if err := vcfg.Validate(); err != nil {
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	log := m.opt.Log.With("component", "vrrp", "group", g.Name)
	ann, err := deps.Announcer(g, log)
	if err != nil {
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	if deps.Handover != nil {
		ann = &handoverAnnouncer{
			Announcer: ann,
			ho:        deps.Handover(g),
			busy:      func() bool { return m.opt.Host.Busy(vips) },
			release:   func(on bool) { m.opt.Host.SetReleasing(vips, on) },
			timeout:   g.HandoverTimeout.D(),
			log:       log,
			holds:     &m.holds,
		}
	}
	conn, err := deps.Listen(vrrp.ConnOptions{Interface: g.Interface, Family: fam, Source: local, Peers: peers, AuthKey: key})
	if err != nil {
		closeAnnouncer(ann)
		return nil, fmt.Errorf("ha group %s: %w", g.Name, err)
	}
	hg := &group{
		name: g.Name,
		key:  groupKey(cfg.Node.Name, g),
		cfg:  *g,
		vips: vips,
		conn: conn,
		ann:  ann,
		done: make(chan struct{}),
	}
	vcfg.PreemptHold = func() string { return hg.preemptHold(m.opt.Host, log) }
	hg.inst = vrrp.New(vcfg, conn, ann, log)
	hg.authKey = key
	hg.track.Store(&trackResult{})
	return hg, nil
}

// start runs the instance, its event reader and its tracker.
func (m *Manager) startGroup(hg *group) {
	ctx, cancel := context.WithCancel(context.Background())
	hg.cancel = cancel
	hg.started = time.Now()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		// A VIP left on the interface by a crashed run would answer
		// traffic on a backup: start clean, as keepalived does.
		addrs := make([]netip.Addr, len(hg.vips))
		for i, v := range hg.vips {
			addrs[i] = v.Addr()
		}
		if err := hg.ann.Release(ctx, addrs); err != nil {
			m.log.Warn("removing leftover VIPs", "group", hg.name, "error", err)
		}
		if ho, ok := hg.ann.(*handoverAnnouncer); ok {
			ho.clear(ctx)
		}
		if err := hg.inst.Run(ctx); err != nil {
			m.log.Error("ha group stopped", "group", hg.name, "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		m.events(ctx, hg)
	}()
	go func() {
		defer wg.Done()
		m.track(ctx, hg)
	}()
	go func() {
		defer wg.Done()
		m.watchPeers(ctx, hg)
	}()
	go func() {
		wg.Wait()
		hg.close()
		close(hg.done)
	}()
}

// close releases the group's socket and announcer.
func (hg *group) close() {
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
func (hg *group) stop() {
	hg.cancel()
	<-hg.done
}

// events turns the instance's transitions into alerts and notify runs.
func (m *Manager) events(ctx context.Context, hg *group) {
	notify := make(chan vrrp.Transition, 16)
	go func() {
		for tr := range notify {
			m.runNotify(hg, tr)
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
					m.event(hg, tr, notify)
				default:
					return
				}
			}
		case tr := <-hg.inst.Events():
			m.event(hg, tr, notify)
		}
	}
}

func (m *Manager) event(hg *group, tr vrrp.Transition, notify chan<- vrrp.Transition) {
	m.masterLost(hg, tr)
	if ep := m.helloEP.Load(); ep != nil {
		ep.Kick() // peers see the new state now, not at the next tick
	}
	extra := map[string]string{"group": hg.name, "vrid": fmt.Sprint(tr.VRID)}
	if tr.Master.IsValid() {
		extra["master"] = tr.Master.String()
	}
	m.opt.Alerts.Notify(alert.Event{
		Kind:      "ha",
		State:     strings.ToLower(tr.To.String()),
		PrevState: strings.ToLower(tr.From.String()),
		Reason:    tr.Reason,
		Node:      m.nodeName(),
		Time:      tr.At,
		Extra:     extra,
	})
	if len(hg.cfg.Notify) > 0 {
		select {
		case notify <- tr:
		default:
			m.log.Warn("ha notify queue full, transition not passed to the notify command", "group", hg.name)
		}
	}
}

// notifyTimeout bounds one run of a group's notify command.
const notifyTimeout = 10 * time.Second

// runNotify runs the group's notify command like keepalived's notify
// scripts, bounded to notifyTimeout. A script may leave a daemon it
// started running (no KillLeftovers); one that keeps the output pipe open
// holds this queue no longer than the runner's grace.
func (m *Manager) runNotify(hg *group, tr vrrp.Transition) {
	res, err := runner.Run(context.Background(), runner.Command{
		Argv: hg.cfg.Notify,
		Env: []string{
			"FULCRUM_GROUP=" + hg.name,
			"FULCRUM_VRID=" + fmt.Sprint(tr.VRID),
			"FULCRUM_STATE=" + strings.ToLower(tr.To.String()),
			"FULCRUM_PREV_STATE=" + strings.ToLower(tr.From.String()),
			"FULCRUM_REASON=" + tr.Reason,
			"FULCRUM_NODE=" + m.nodeName(),
		},
		Timeout:     notifyTimeout,
		OutputLimit: 512,
	})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		m.log.Warn("ha notify command failed", "group", hg.name, "error", err, "output", string(res.Output))
	}
}
