package e2e

// The director data plane end to end, with the real binary in network
// namespaces: forwarding direct (LVS-DR) and tunnel (LVS-TUN) deliver the
// clients' own packets to every real server, the replies go from the real
// servers to the clients without crossing the director, drain and
// removal keep or end a real server's established flows as documented,
// and long-lived TCP streams live through the death of the master
// director, or the loss of its link, even when a real server was added
// after they began (the flows are synchronised between the directors).

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// Last bytes of the director lab's addresses in its /24.
const (
	dirIPClient = 50
	dirIPD1     = 1
	dirIPD2     = 2
	dirIPReal   = 11 // real servers from .11 up
	dirIPVIP    = 100
	dirIPRouter = 254
)

// The back subnet of the tunnelling lab, behind its router.
var dirBackNet = netip.MustParsePrefix("10.214.0.0/24")

// requireDirector skips t unless the kernel can run the director's XDP
// program (the lab itself needs root: requireLab).
func requireDirector(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces and XDP need root")
	}
	if err := xdp.Supported(); err != nil {
		t.Skipf("skipping: this kernel cannot run the director's XDP program: %v", err)
	}
}

// dirLab is a client, real servers and one or two directors (d1, d2) on
// one switch; in tunnel mode the real servers are on a subnet of their
// own behind a router, which the director reaches only through it.
type dirLab struct {
	*lab
	t      *testing.T
	mode   string // direct or tunnel
	vip    netip.Addr
	client *host
	gw     *host // tunnel mode: the router in front of the real servers
	reals  []*dirReal
	dirs   map[string]*host
	nodes  map[string]*lbNode
	// preempt is the HA group's: with it the returning d1 takes the VIP
	// back from d2.
	preempt bool
}

// dirReal is a real server: a web server (realServer, on port 80) and an
// echo server (port 7), both answering on the VIP.
type dirReal struct {
	name string
	h    *host
	web  *realServer
	echo *echoServer
}

func (r *dirReal) addr(port int) string { return fmt.Sprintf("%v:%d", r.h.addr, port) }

// newDirLab builds the lab with n real servers and the directors named
// (d1 and, for fail-over tests, d2). The directors are not started.
func newDirLab(t *testing.T, mode string, reals int, directors ...string) *dirLab {
	t.Helper()
	requireDirector(t)
	l := &dirLab{lab: newLab(t), t: t, mode: mode, dirs: map[string]*host{}, nodes: map[string]*lbNode{}}
	l.vip = l.addr(dirIPVIP)
	l.client = l.host("client", l.addr(dirIPClient))
	if mode == "tunnel" {
		l.gw = l.router("router", netip.PrefixFrom(l.addr(dirIPRouter), 24), netip.PrefixFrom(backAddr(dirIPRouter), 24))
	}
	for range reals {
		l.addReal()
	}
	for _, name := range directors {
		ip := map[string]byte{"d1": dirIPD1, "d2": dirIPD2}[name]
		if ip == 0 {
			t.Fatalf("director %q: the lab has d1 and d2", name)
		}
		h := l.host(name, l.addr(ip))
		if mode == "tunnel" {
			l.ip("-n", h.ns, "route", "add", dirBackNet.String(), "via", l.addr(dirIPRouter).String())
		}
		l.dirs[name] = h
	}
	l.softwareChecksums()
	return l
}

// backAddr is the address with last byte b in the back subnet.
func backAddr(b byte) netip.Addr {
	a := dirBackNet.Addr().As4()
	a[3] = b
	return netip.AddrFrom4(a)
}

// addReal adds the next real server (r1, r2, ...), set up for the lab's
// mode and serving.
func (l *dirLab) addReal() *dirReal {
	l.t.Helper()
	i := len(l.reals)
	name := fmt.Sprintf("r%d", i+1)
	var h *host
	if l.mode == "tunnel" {
		h = l.backHost(name, netip.PrefixFrom(backAddr(byte(dirIPReal+i)), 24), backAddr(dirIPRouter))
	} else {
		h = l.host(name, l.addr(byte(dirIPReal+i)))
	}
	realserverUp(h, l.mode, l.vip)
	r := &dirReal{name: name, h: h}
	r.web = &realServer{h: h, name: name, addr: r.addr(80), listen: "0.0.0.0:80"}
	r.web.setPage("Test Page\n")
	r.web.start()
	l.t.Cleanup(r.web.stop)
	r.echo = startEcho(h, name, 7)
	l.reals = append(l.reals, r)
	return r
}

// config is the directors' config: services web (port 80) and echo (port
// 7) on the VIP, forwarded in the lab's mode to reals; with two
// directors an HA group moves the VIP and the flows are synchronised.
func (l *dirLab) config(node string, reals []*dirReal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node:\n  name: %s\n", node)
	b.WriteString("director:\n  interfaces: [eth0]\n  xdp_mode: generic\n")
	if len(l.dirs) > 1 {
		var peers []string
		for name, h := range l.dirs {
			if name != node {
				peers = append(peers, h.addr.String()+":8848")
			}
		}
		fmt.Fprintf(&b, "  sync:\n    listen: 0.0.0.0:8848\n    peers: [%s]\n", strings.Join(peers, ", "))
	}
	b.WriteString("services:\n")
	for _, svc := range []struct {
		name      string
		port      int
		quiescent bool
	}{{"web", 80, true}, {"echo", 7, false}} {
		fmt.Fprintf(&b, "  - name: %s\n    listen: %v:%d\n    protocol: tcp\n    forwarding: %s\n    scheduler: maglev\n", svc.name, l.vip, svc.port, l.mode)
		b.WriteString("    health: { type: tcp, interval: 500ms, timeout: 2s, rise: 1, fall: 2 }\n")
		fmt.Fprintf(&b, "    quiescent: %v\n    removal_grace: 2s\n    backends:\n", svc.quiescent)
		for _, r := range reals {
			fmt.Fprintf(&b, "      - { address: %s }\n", r.addr(svc.port))
		}
	}
	if len(l.dirs) > 1 {
		fmt.Fprintf(&b, "ha:\n  groups:\n    - name: vip\n      interface: eth0\n      vrid: 51\n      vips: [%v/24]\n      priority: { d1: 150, d2: 100 }\n      preempt: %v\n", l.vip, l.preempt)
	}
	return b.String()
}

// start runs every director on the lab's real servers. With one
// director, the VIP is put on its eth0 by hand (as lvs-mon's eth0:1);
// with two, d1 is waited for as the master.
func (l *dirLab) start() {
	l.t.Helper()
	if len(l.dirs) == 1 {
		d := l.dirs["d1"]
		l.ip("-n", d.ns, "addr", "add", l.vip.String()+"/24", "dev", d.ifname)
		l.nodes["d1"] = startFulcrum(d, l.config("d1", l.reals))
	} else {
		l.nodes["d1"] = startFulcrum(l.dirs["d1"], l.config("d1", l.reals))
		l.waitMaster("d1")
		l.nodes["d2"] = startFulcrum(l.dirs["d2"], l.config("d2", l.reals))
		l.waitMaster("d1")
		// The backup ready to take over: its rings full, the master's
		// table received.
		for _, svc := range []string{"web", "echo"} {
			l.nodes["d2"].waitRing(svc, len(l.reals), 10*time.Second)
		}
		l.nodes["d2"].syncJoined(l.dirs["d1"].addr, 10*time.Second)
	}
	var names []string
	for _, r := range l.reals {
		l.waitHealthy(r, true)
		names = append(names, r.name)
	}
	took := waitServes(l.t, l.client, l.url("/"), names, 10*time.Second)
	seen := map[string]bool{}
	var last error
	took += waitUntil(l.t, 10*time.Second, fmt.Sprintf("echoes from each of %v", names), func() (bool, string) {
		s, err := openStream(l.t, l.client, netip.Addr{}, fmt.Sprintf("%v:7", l.vip), time.Second, 1)
		if err != nil {
			last = err
		} else {
			seen[s.backend] = true
			s.close()
		}
		for _, n := range names {
			if !seen[n] {
				return false, fmt.Sprintf("answered so far: %v; last error: %v", seen, last)
			}
		}
		return true, ""
	})
	l.t.Logf("every real server answered through the VIP %v after their health checks passed", took.Round(time.Millisecond))
}

// waitMaster waits until master alone holds the VIP and is master.
func (l *dirLab) waitMaster(master string) time.Duration {
	l.t.Helper()
	c := &cluster{t: l.t, nodes: l.nodes}
	return c.waitMaster("vip", l.vip, master, 10*time.Second)
}

// waitHealthy waits until every running director reports r's web and
// echo backends healthy (or not).
func (l *dirLab) waitHealthy(r *dirReal, healthy bool) {
	l.t.Helper()
	c := &cluster{t: l.t, nodes: l.nodes}
	c.waitBackend("web", r.addr(80), healthy, 10*time.Second)
	c.waitBackend("echo", r.addr(7), healthy, 10*time.Second)
}

// url is the web service on the VIP.
func (l *dirLab) url(path string) string { return fmt.Sprintf("http://%v%s", l.vip, path) }

// delivers checks that requests from the client reach every real
// server, each of which sees the client's own address.
func (l *dirLab) delivers(n int) {
	l.t.Helper()
	counts := map[string]int{}
	for i := range n {
		body, err := get(l.client, netip.Addr{}, l.url("/"))
		if err != nil {
			l.t.Fatalf("request %d to %s: %v", i, l.url("/"), err)
		}
		a := parseAnswer(body)
		if a.from != l.client.addr.String() {
			l.t.Errorf("request %d: %s saw the connection come from %s, want the client's own %v", i, a.server, a.from, l.client.addr)
		}
		counts[a.server]++
	}
	l.t.Logf("%d requests through the VIP: %v", n, counts)
	for _, r := range l.reals {
		if counts[r.name] == 0 {
			l.t.Errorf("%d requests: %v, none to %s", n, counts, r.name)
		}
	}
}

// bypasses downloads size bytes through the VIP and checks that the
// reply did not cross the director: the director's interface received
// no more than the client sent (its requests and acknowledgements; 64
// KiB more for health checks and ARP), and under a tenth of the
// download in each direction, while a real server sent it all.
func (l *dirLab) bypasses(director *host, size int) {
	l.t.Helper()
	before := director.ifStats("eth0")
	clientBefore := l.client.ifStats("eth0")
	reals := map[string]ifStats{}
	for _, r := range l.reals {
		reals[r.name] = r.h.ifStats("eth0")
	}
	c := l.client.httpClient(30 * time.Second)
	resp, err := c.Get(l.url(fmt.Sprintf("/bytes?n=%d", size)))
	if err != nil {
		l.t.Fatalf("download: %v", err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != int64(size) {
		l.t.Fatalf("download: %d bytes, %v; want %d", got, err, size)
	}
	d := director.ifStats("eth0").sub(before)
	cl := l.client.ifStats("eth0").sub(clientBefore)
	var sent uint64
	for _, r := range l.reals {
		s := r.h.ifStats("eth0").sub(reals[r.name])
		sent = max(sent, s.txBytes)
	}
	l.t.Logf("%d-byte download: the client sent %d bytes; the director's eth0 received %d bytes (%d packets) and sent %d (%d packets); the real server sent %d",
		size, cl.txBytes, d.rxBytes, d.rxPackets, d.txBytes, d.txPackets, sent)
	if sent < uint64(size) {
		l.t.Errorf("the real server sent %d bytes, fewer than the %d downloaded: the reply did not come from it", sent, size)
	}
	if d.rxBytes > cl.txBytes+64<<10 {
		l.t.Errorf("the director received %d bytes, more than the %d the client sent: the reply crossed the director", d.rxBytes, cl.txBytes)
	}
	if limit := uint64(size) / 10; d.rxBytes > limit || d.txBytes > limit {
		l.t.Errorf("the director's eth0 carried rx %d / tx %d bytes of a %d-byte download, want each under a tenth (%d)", d.rxBytes, d.txBytes, size, limit)
	}
}

// reports checks what d1 says of the traffic so far: `fulcrum status`
// names its interface and attach mode, and the API counts new flows for
// every real server of the web service.
func (l *dirLab) reports(attach string) {
	l.t.Helper()
	d := l.dirs["d1"]
	if out := d.Run(binary, "status"); !strings.Contains(out, "Director  eth0 "+attach) {
		l.t.Errorf("fulcrum status on d1 does not say the director runs on eth0 in %s mode:\n%s", attach, out)
	}
	st, err := l.nodes["d1"].status()
	if err != nil {
		l.t.Fatal(err)
	}
	for _, r := range l.reals {
		b, ok := findBackend(st, "web", r.addr(80))
		if !ok || b.Director == nil || b.Director.NewFlows == 0 || b.Director.Packets == 0 {
			l.t.Errorf("d1's status of web's %s: %+v, want the kernel's counters with new flows and packets", r.name, b.Director)
		}
	}
}

// TestDirectorDirectRouting: forwarding direct delivers to every real
// server, which sees the client's own address, and a download's bytes go
// from the real server to the client without crossing the director.
func TestDirectorDirectRouting(t *testing.T) {
	t.Parallel()
	l := newDirLab(t, "direct", 2, "d1")
	l.start()
	l.delivers(20)
	l.bypasses(l.dirs["d1"], 5<<20)
	l.reports("generic")
}

// TestDirectorTunnel: forwarding tunnel delivers to real servers on
// another subnet, behind a router, which see the client's own address
// and answer it directly (through the router, not the director).
func TestDirectorTunnel(t *testing.T) {
	t.Parallel()
	l := newDirLab(t, "tunnel", 2, "d1")
	l.start()
	l.delivers(20)
	l.bypasses(l.dirs["d1"], 5<<20)
	l.reports("generic")
}

// streamsOn opens streams to the echo service until at least one is on
// each real server (at most 64), and returns them by real server.
func (l *dirLab) streamsOn() map[string]streams {
	l.t.Helper()
	by := map[string]streams{}
	addr := fmt.Sprintf("%v:7", l.vip)
	for range 64 {
		ss := openStreams(l.t, l.client, addr, 1)
		by[ss[0].backend] = append(by[ss[0].backend], ss[0])
		if len(by) == len(l.reals) {
			break
		}
	}
	for _, r := range l.reals {
		if len(by[r.name]) == 0 {
			l.t.Fatalf("64 streams: none to %s (%v)", r.name, by)
		}
	}
	return by
}

// newEchoes opens n short connections to the echo service and counts the
// real servers that answered.
func (l *dirLab) newEchoes(n int) map[string]int {
	l.t.Helper()
	counts := map[string]int{}
	for range n {
		s := openStreams(l.t, l.client, fmt.Sprintf("%v:7", l.vip), 1)[0]
		counts[s.backend]++
		s.close()
	}
	return counts
}

// TestDirectorDrain: a drained real server keeps its established flows
// and gets no new ones (ldirectord's quiescent, ipvsadm -w 0).
func TestDirectorDrain(t *testing.T) {
	t.Parallel()
	l := newDirLab(t, "direct", 2, "d1")
	l.start()
	by := l.streamsOn()
	r1 := l.reals[0]
	l.dirs["d1"].Run(binary, "backend", "drain", "echo", r1.addr(7))
	if got := l.newEchoes(20); got[r1.name] != 0 {
		t.Errorf("after draining %s, 20 new connections went %v, want none to it", r1.name, got)
	}
	var all streams
	for _, ss := range by {
		all = append(all, ss...)
	}
	all.progress(t, 20, 20*time.Second, "after the drain")
	t.Logf("drained: %s", all.summary())
}

// TestDirectorRemoval: a real server removed from a service with
// quiescent: false keeps its flows for removal_grace (2s), then loses
// them: their packets are scheduled afresh, to a real server that knows
// no such connection and resets it. The other real server's flows live
// on.
func TestDirectorRemoval(t *testing.T) {
	t.Parallel()
	l := newDirLab(t, "direct", 2, "d1")
	l.start()
	by := l.streamsOn()
	r1, r2 := l.reals[0], l.reals[1]
	removed := time.Now()
	l.dirs["d1"].Run(binary, "backend", "remove", "echo", r1.addr(7))
	// Within the grace the removed server's streams go on (after it
	// they would fail, and progress with them).
	by[r1.name].progress(t, 5, 2*time.Second, "within removal_grace")
	if got := l.newEchoes(10); got[r1.name] != 0 {
		t.Errorf("after removing %s, 10 new connections went %v, want none to it", r1.name, got)
	}
	waitUntil(t, 15*time.Second, "the removed real server's streams to end", func() (bool, string) {
		for _, s := range by[r1.name] {
			if s.failed() == nil {
				return false, by[r1.name].summary()
			}
		}
		return true, ""
	})
	took := time.Since(removed)
	t.Logf("%s's streams ended %v after its removal: %s", r1.name, took.Round(time.Millisecond), by[r1.name].summary())
	if took < 2*time.Second {
		t.Errorf("the removed real server's streams ended %v after the removal, before removal_grace (2s)", took)
	}
	for _, s := range by[r1.name] {
		if !isReset(s.failed()) {
			t.Errorf("a stream of the removed real server ended with %v, want a reset by the real server its packets now reach", s.failed())
		}
	}
	by[r2.name].progress(t, 10, 10*time.Second, "the other real server's streams")
}

// TestDirectorFailover: 50 long-lived TCP streams (a byte sent and
// echoed every 50 ms) through the master director; then the master is
// killed (kill -9) or its cable pulled. The backup takes the VIP and
// every stream carries on, with no reset: the backup's Maglev table is
// the master's. In the "added" runs a third real server joins both
// directors first, so that the table would now send about a third of the
// streams elsewhere: the backup must have learnt those flows from the
// master (director.sync).
func TestDirectorFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		add   bool
	}{
		{"cable pulled", false},
		{"cable pulled", true},
		{"kill -9", false},
		{"kill -9", true},
	} {
		name := strings.ReplaceAll(tc.fault, " ", "_")
		if tc.add {
			name += "/backend_added"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			failover(t, tc.fault, tc.add)
		})
	}
}

func failover(t *testing.T, fault string, add bool) {
	l := newDirLab(t, "direct", 3, "d1", "d2")
	r3 := l.reals[2]
	l.reals = l.reals[:2] // r3 serves, but is not in the config
	l.start()
	ss := openStreams(t, l.client, fmt.Sprintf("%v:7", l.vip), 50)
	ss.progress(t, 5, 20*time.Second, "before the fail-over")
	t.Logf("streams: %v", ss.byBackend())

	if add {
		l.addPinning(ss, r3)
	}
	l.failTo(ss, "d2", fault)
}

// addPinning adds r3 to both directors' services while the streams ss
// run, so that the new Maglev table would send about a third of them
// elsewhere, and waits until the master has sent those flows to d2.
func (l *dirLab) addPinning(ss streams, r3 *dirReal) {
	t := l.t
	t.Helper()
	l.reals = append(l.reals, r3)
	for _, name := range []string{"d1", "d2"} {
		l.dirs[name].Run(binary, "backend", "add", "web", r3.addr(80))
		l.dirs[name].Run(binary, "backend", "add", "echo", r3.addr(7))
	}
	l.waitHealthy(r3, true)
	if got := l.newEchoes(30); got[r3.name] == 0 {
		t.Fatalf("30 new connections after adding %s: %v, none to it", r3.name, got)
	}
	ss.progress(t, 5, 20*time.Second, "after adding r3")
	// The master sends the flows its new table places elsewhere.
	waitUntil(t, 10*time.Second, "d2 to install flows from d1", func() (bool, string) {
		st, err := l.nodes["d2"].status()
		if err != nil || st.Director == nil || st.Director.Sync == nil {
			return false, fmt.Sprintf("status: %v", err)
		}
		return st.Director.Sync.Installed > 0, fmt.Sprintf("sync %+v", *st.Director.Sync)
	})
	if st, err := l.nodes["d2"].status(); err == nil && st.Director != nil && st.Director.Sync != nil {
		t.Logf("d2's flow sync after the addition: %d entries received, %d installed", st.Director.Sync.Received, st.Director.Sync.Installed)
	}
}

// failTo makes the master fail (fault) or, with fault "" , waits for the
// returning d1 to preempt, until to is master with the VIP, and checks
// that every stream of ss carries on through to.
func (l *dirLab) failTo(ss streams, to, fault string) {
	t := l.t
	t.Helper()
	before := l.dirs[to].ifStats("eth0")
	start := time.Now()
	switch fault {
	case "kill -9":
		l.nodes["d1"].kill9()
	case "cable pulled":
		l.dirs["d1"].cable(false)
	}
	waitUntil(t, 15*time.Second, to+" master with the VIP", func() (bool, string) {
		c := &cluster{t: t, nodes: map[string]*lbNode{to: l.nodes[to]}}
		states, holds, desc := c.roles("vip", l.vip)
		return states[to] == "master" && holds[to], desc
	})
	what := cmp.Or(fault, "the fail-back")
	t.Logf("%s master %v after %s", to, time.Since(start).Round(time.Millisecond), what)
	ss.progress(t, 20, 30*time.Second, "after "+what)
	took := time.Since(start)
	got := l.dirs[to].ifStats("eth0").sub(before)
	t.Logf("%s: every stream made 20 rounds within %v; %s's eth0 received %d packets meanwhile; %s",
		what, took.Round(time.Millisecond), to, got.rxPackets, ss.summary())
	if got.rxPackets < 50*20 {
		t.Errorf("%s received %d packets since %s, want at least the streams' %d echoes: the streams did not move to it", to, got.rxPackets, what, 50*20)
	}
}

// TestDirectorFailback: d1 is killed (kill -9), d2 takes the VIP and the
// 50 streams, about a third of them pinned to a real server other than
// the Maglev table's (r3 was added while they ran); then d1 comes back
// with the higher priority and preempt on. It takes the VIP back only
// once its flow sync has d2's table (docs/ha.md, fail-back): every
// stream carries on through both moves, with no reset.
func TestDirectorFailback(t *testing.T) {
	t.Parallel()
	requireNft(t)
	l := newDirLab(t, "direct", 3, "d1", "d2")
	l.preempt = true
	r3 := l.reals[2]
	l.reals = l.reals[:2] // r3 serves, but is not in the config
	l.start()
	ss := openStreams(t, l.client, fmt.Sprintf("%v:7", l.vip), 50)
	ss.progress(t, 5, 20*time.Second, "before the fail-over")
	l.addPinning(ss, r3)
	t.Logf("streams: %v", ss.byBackend())
	l.failTo(ss, "d2", "kill -9")

	// d1 returns, its config listing r3 as d2's runtime does.
	d1 := l.nodes["d1"]
	if err := os.WriteFile(d1.config, []byte(l.config("d1", l.reals)), 0o644); err != nil {
		t.Fatal(err)
	}
	// d2's table reaches d1 only when the test lets it: without the
	// hold d1 would preempt within half a second, and the pinned
	// streams reaching it would go to r3 and be reset.
	unblock := l.dropSync(l.dirs["d2"], l.dirs["d1"])
	// As after a reboot, d1 knows no neighbour: it resolves the real
	// servers' MACs again before it can forward to them.
	l.ip("-n", l.dirs["d1"].ns, "neigh", "flush", "dev", l.dirs["d1"].ifname)
	d1.start()
	held := waitUntil(t, 10*time.Second, "d1 to hold its preemption", func() (bool, string) {
		g, err := d1.haGroup("vip")
		return err == nil && g.State == "backup" && strings.Contains(g.PreemptHeld, "waiting for the flow table of"), fmt.Sprintf("%+v %v", g, err)
	})
	time.Sleep(2 * time.Second) // d1 would have preempted long since
	if g, err := d1.haGroup("vip"); err != nil || g.State != "backup" || g.PreemptHeld == "" || g.PreemptHoldUntil.IsZero() {
		t.Fatalf("d1 %v after its start without d2's table: %+v (%v), want a backup holding its preemption", held+2*time.Second, g, err)
	} else {
		t.Logf("d1 held: %q until %v", g.PreemptHeld, g.PreemptHoldUntil.Format(time.StampMilli))
	}
	unblock()
	l.failTo(ss, "d1", "")
	for _, want := range []string{`msg="preemption of the live master held back"`, `msg="flow table received from peer"`, `msg="preemption no longer held back"`} {
		if !strings.Contains(d1.p.out.String(), want) {
			t.Errorf("d1's log has no %s", want)
		}
	}
}

// dropSync drops the flow sync's datagrams from one director to another
// on the switch, until the returned function lets them through again.
func (l *dirLab) dropSync(from, to *host) (unblock func()) {
	l.t.Helper()
	return l.switchDrops("nosync_"+from.name+"_"+to.name, fmt.Sprintf("iifname %q oifname %q udp sport 8848 drop", from.port, to.port))
}
