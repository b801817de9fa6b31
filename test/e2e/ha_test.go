package e2e

// High availability end to end: fulcrum nodes in network namespaces on one
// bridge, a client and two backends beside them, the VIP really moving
// between the nodes' interfaces, gratuitous ARP really updating the
// client's neighbour table, and faults made the way an operator meets
// them: kill -9, a pulled cable, a partition, a forged advert.

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// Addresses in each HA lab's /24.
const (
	ipClient   = 10
	ipLB1      = 11
	ipLB2      = 12
	ipLB3      = 13
	ipBackend1 = 21
	ipBackend2 = 22
	ipAttacker = 30
	ipVIP      = 100

	haGroupName = "web"
	haVRID      = 51
)

// haOpts shape an HA lab.
type haOpts struct {
	// prio is each node's priority, and names the nodes (lb1, lb2, lb3);
	// default lb1 150, lb2 100.
	prio map[string]int
	// keepalived lists nodes that run keepalived instead of fulcrum;
	// kaAdvertInt is their advert_int (default 0.1, keepalived's own
	// default is 1).
	keepalived  []string
	kaAdvertInt string
	preempt     *bool
	auth        bool // every node gets the same auth_key_file
	// noTraffic leaves out the client and the backends.
	noTraffic bool
	// extra is appended to the group's config (indented 6 spaces).
	extra string
}

// haLab is a client, two backends and two balancer nodes on one switch.
type haLab struct {
	*lab
	t      *testing.T
	opts   haOpts
	vip    netip.Addr
	client *host
	lbs    map[string]*host
	nodes  map[string]*lbNode // fulcrum nodes
	kas    map[string]*proc   // keepalived nodes
	key    string             // auth key file
}

func newHALab(t *testing.T, opts haOpts) *haLab {
	t.Helper()
	if opts.prio == nil {
		opts.prio = map[string]int{"lb1": 150, "lb2": 100}
	}
	if len(opts.keepalived) > 0 {
		if _, err := exec.LookPath("keepalived"); err != nil {
			t.Skip("skipping: keepalived is not installed (Debian package keepalived)")
		}
	}
	l := &haLab{
		lab:   newLab(t),
		t:     t,
		opts:  opts,
		lbs:   map[string]*host{},
		nodes: map[string]*lbNode{},
		kas:   map[string]*proc{},
	}
	l.vip = l.addr(ipVIP)
	if !opts.noTraffic {
		l.client = l.host("client", l.addr(ipClient))
		for i, b := range []byte{ipBackend1, ipBackend2} {
			be := l.host(fmt.Sprintf("be%d", i+1), l.addr(b))
			name := be.name
			// The answer names the backend and the balancer that proxied
			// (the connection's source address).
			be.serveHTTP(fmt.Sprintf("%v:8080", be.addr), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// ?slow=50ms keeps each request in flight that long, so
				// that a hand-over meets several.
				if d, err := time.ParseDuration(r.URL.Query().Get("slow")); err == nil && d > 0 && d < 5*time.Second {
					time.Sleep(d)
				}
				if _, err := io.Copy(io.Discard, r.Body); err != nil {
					http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
					return
				}
				from, _, _ := strings.Cut(r.RemoteAddr, ":")
				fmt.Fprintf(w, "%s from=%s", name, from)
			}))
		}
	}
	for _, name := range l.names() {
		ip, ok := map[string]byte{"lb1": ipLB1, "lb2": ipLB2, "lb3": ipLB3}[name]
		if !ok {
			t.Fatalf("haOpts.prio names node %q; the lab has lb1, lb2 and lb3", name)
		}
		l.lbs[name] = l.host(name, l.addr(ip))
	}
	if opts.auth {
		secret := make([]byte, 32)
		rand.Read(secret)
		l.key = filepath.Join(t.TempDir(), "vrrp.key")
		if err := os.WriteFile(l.key, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// config is fulcrum's config for node: identical on every node but for
// node.name.
func (l *haLab) config(node string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `node: { name: %s }
admin: { listen: %s }
shutdown: { drain_timeout: 1s }
services:
  - name: web
    listen: %v:80
    protocol: tcp
    scheduler: rr
    backends:
      - { address: %v:8080 }
      - { address: %v:8080 }
ha:
  groups:
    - name: %s
      interface: eth0
      vrid: %d
      vips: [%v/24]
      priority: { %s }
      advert_interval: 100ms
`, node, labAdmin, l.vip, l.addr(ipBackend1), l.addr(ipBackend2), haGroupName, haVRID, l.vip, l.priorities())
	if l.opts.preempt != nil {
		fmt.Fprintf(&b, "      preempt: %v\n", *l.opts.preempt)
	}
	if l.key != "" {
		fmt.Fprintf(&b, "      auth_key_file: %s\n", l.key)
	}
	b.WriteString(l.opts.extra)
	return b.String()
}

// names lists the lab's balancer nodes in name order.
func (l *haLab) names() []string {
	names := slices.Collect(maps.Keys(l.opts.prio))
	slices.Sort(names)
	return names
}

// priorities is the config's priority map: "lb1: 150, lb2: 100".
func (l *haLab) priorities() string {
	var parts []string
	for _, name := range l.names() {
		parts = append(parts, fmt.Sprintf("%s: %d", name, l.opts.prio[name]))
	}
	return strings.Join(parts, ", ")
}

// start starts node (fulcrum or keepalived, as opts say).
func (l *haLab) start(node string) {
	l.t.Helper()
	h := l.lbs[node]
	if slices.Contains(l.opts.keepalived, node) {
		l.kas[node] = startKeepalived(h, l.opts.prio[node], l.vip, cmp.Or(l.opts.kaAdvertInt, "0.1"))
		return
	}
	if n := l.nodes[node]; n != nil {
		n.start()
		return
	}
	l.nodes[node] = startFulcrum(h, l.config(node))
}

// startAll starts the nodes by descending priority, each once the one
// before is master or backup, so that the election does not depend on
// which process happened to start first.
func (l *haLab) startAll() {
	l.t.Helper()
	names := l.names()
	sort.Slice(names, func(i, j int) bool { return l.opts.prio[names[i]] > l.opts.prio[names[j]] })
	for _, name := range names {
		l.start(name)
		l.waitRoles(names[0], 10*time.Second)
	}
}

// state is node's VRRP state: fulcrum's from its status ("down" when the
// process is gone, "starting" while its status has no group yet),
// keepalived's from whether it holds the VIP.
func (l *haLab) state(node string) string {
	if n := l.nodes[node]; n != nil {
		if !n.p.running() {
			return "down"
		}
		g, err := n.haGroup(haGroupName)
		if err != nil {
			return "starting"
		}
		return g.State
	}
	if p := l.kas[node]; p != nil && p.running() {
		if l.lbs[node].hasAddr(l.vip) {
			return "master"
		}
		return "backup"
	}
	return "down"
}

// roles describes every node: state, and whether its interface holds the
// VIP.
func (l *haLab) roles() (states map[string]string, holds map[string]bool, desc string) {
	states, holds = map[string]string{}, map[string]bool{}
	var parts []string
	for _, name := range l.names() {
		states[name] = l.state(name)
		holds[name] = l.lbs[name].hasAddr(l.vip)
		parts = append(parts, fmt.Sprintf("%s=%s(vip:%v)", name, states[name], holds[name]))
	}
	return states, holds, strings.Join(parts, " ")
}

// settledOn reports whether master is the only master and the only
// running node holding the VIP, and every other running node is backup.
func (l *haLab) settledOn(master string) (bool, string) {
	states, holds, desc := l.roles()
	for name, st := range states {
		switch {
		case st == "down":
			continue // a killed node keeps its VIP: nothing removes it
		case name == master && (st != "master" || !holds[name]):
			return false, desc
		case name != master && (st != "backup" || holds[name]):
			return false, desc
		}
	}
	return true, desc
}

// waitRoles waits until master is settled as the only master and returns
// how long that took.
func (l *haLab) waitRoles(master string, timeout time.Duration) time.Duration {
	l.t.Helper()
	return waitUntil(l.t, timeout, master+" the only master", func() (bool, string) { return l.settledOn(master) })
}

// waitUntil polls cond every 10ms until it holds, and fails the test
// after timeout with cond's last description.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, desc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// url is the service on the VIP.
func (l *haLab) url() string { return fmt.Sprintf("http://%v/", l.vip) }

// probe starts the client's request loop: every 10ms, each request on a
// new connection with timeout, for at most 20s.
func (l *haLab) probe(timeout time.Duration) *prober {
	return startProber(l.t, l.client, l.url(), 10*time.Millisecond, timeout, 2000)
}

// servedBy waits until a request completed after since was proxied by
// node (the backend saw node's address).
func (l *haLab) servedBy(p *prober, node string, since time.Time, timeout time.Duration) {
	l.t.Helper()
	waitProxiedBy(l.t, p, l.lbs[node], since, timeout)
}

// waitProxiedBy waits until a request of p completed after since was
// proxied by balancer (its answer ends in "from=" and balancer's address,
// the source the backend saw).
func waitProxiedBy(t *testing.T, p *prober, balancer *host, since time.Time, timeout time.Duration) {
	t.Helper()
	want := "from=" + balancer.addr.String()
	waitUntil(t, timeout, "a request served through "+balancer.name, func() (bool, string) {
		res := p.results()
		for _, r := range slices.Backward(res) {
			if r.end.Before(since) {
				break
			}
			if r.err == nil && strings.HasSuffix(r.body, want) {
				return true, ""
			}
		}
		if len(res) == 0 {
			return false, "no request completed"
		}
		r := res[len(res)-1]
		return false, fmt.Sprintf("last request: %q, error %v", r.body, r.err)
	})
}

// steady waits until the last n requests all succeeded.
func steady(t *testing.T, p *prober, n int) {
	t.Helper()
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d successful requests in a row", n), func() (bool, string) {
		res := p.results()
		if len(res) < n {
			return false, fmt.Sprintf("%d requests so far", len(res))
		}
		for _, r := range res[len(res)-n:] {
			if r.err != nil {
				return false, r.err.Error()
			}
		}
		return true, ""
	})
}

func logOutage(t *testing.T, what string, o outage, fault time.Time) {
	t.Helper()
	t.Logf("%s: service gap %v (last success %v before the fault, first %v after), %d failed and %d successful requests; first errors %q",
		what, o.gap.Round(time.Millisecond), fault.Sub(o.before).Round(time.Millisecond), o.after.Sub(fault).Round(time.Millisecond),
		o.failed, o.ok, o.firstErrors)
}

// haGroupOf returns node's status of the lab's group, failing the test
// when it cannot.
func (l *haLab) haGroupOf(node string) admin.HAGroup {
	l.t.Helper()
	g, err := l.nodes[node].haGroup(haGroupName)
	if err != nil {
		l.t.Fatalf("%s: %v", node, err)
	}
	return g
}

// TestHAElection: the VIP is on the node with the highest priority, and
// the status of both nodes says so.
func TestHAElection(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{})
	l.startAll()
	for name, want := range map[string]bool{"lb1": true, "lb2": false} {
		out := l.ip("-n", l.lbs[name].ns, "-o", "addr", "show", "dev", "eth0")
		if got := strings.Contains(out, " "+l.vip.String()+"/24 "); got != want {
			t.Errorf("ip -n %s addr: VIP %v present %v, want %v:\n%s", name, l.vip, got, want, out)
		}
	}
	waitUntil(t, 5*time.Second, "lb2 hearing a few of lb1's adverts", func() (bool, string) {
		g := l.haGroupOf("lb2")
		return g.AdvertsReceived >= 2, fmt.Sprintf("%d received", g.AdvertsReceived)
	})
	g1, g2 := l.haGroupOf("lb1"), l.haGroupOf("lb2")
	lb1 := l.lbs["lb1"].addr.String()
	if g1.State != "master" || g1.Priority != 150 || g1.Master != lb1 || g1.VRID != haVRID || !slices.Equal(g1.VIPs, []string{l.vip.String() + "/24"}) {
		t.Errorf("lb1: %+v; want master, priority 150, master %s, vips [%v/24]", g1, lb1, l.vip)
	}
	if g2.State != "backup" || g2.Priority != 100 || g2.Master != lb1 || g2.MasterPriority != 150 || g2.MasterIntervalMS != 100 {
		t.Errorf("lb2: %+v; want backup, priority 100, master %s advertising 150 every 100ms", g2, lb1)
	}
	if g2.AdvertsReceived < 2 || len(g2.Dropped) != 0 || len(g1.Dropped) != 0 {
		t.Errorf("lb2 received %d adverts; dropped: lb1 %v, lb2 %v", g2.AdvertsReceived, g1.Dropped, g2.Dropped)
	}
	// The service answers on the VIP, through lb1, and the client
	// resolved the VIP to lb1's interface.
	resp, err := l.client.httpClient(5 * time.Second).Get(l.url())
	if err != nil {
		t.Fatalf("GET %s: %v", l.url(), err)
	}
	body := make([]byte, 100)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if want := "from=" + lb1; !strings.HasSuffix(string(body[:n]), want) {
		t.Errorf("answer %q, want one proxied by lb1 (%s)", body[:n], want)
	}
	if mac := l.client.neighMAC(l.vip); mac != l.lbs["lb1"].mac {
		t.Errorf("client resolves the VIP to %q, want lb1's %s", mac, l.lbs["lb1"].mac)
	}
}

// TestHAKillMaster: kill -9 of the master moves the VIP to the backup
// after the master-down interval, and the client is served again.
func TestHAKillMaster(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{})
	l.startAll()
	p := l.probe(time.Second)
	steady(t, p, 20)
	// lb2 names lb1 in its warnings below once it has had lb1's hello:
	// wait for it rather than for the time it usually takes.
	waitUntil(t, 10*time.Second, "lb2 hearing lb1's hello", func() (bool, string) {
		peers := l.haGroupOf("lb2").Peers
		for _, peer := range peers {
			if peer.Node == "lb1" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("lb2's peers: %+v", peers)
	})

	fault := time.Now()
	l.nodes["lb1"].kill9()
	took := l.waitRoles("lb2", 5*time.Second)
	l.servedBy(p, "lb2", fault, 5*time.Second)
	steady(t, p, 10)
	o := summarize(p.finish())
	logOutage(t, "kill -9 of the master", o, fault)
	t.Logf("lb2 master %v after the kill (master-down interval at priority 100: %v)", took.Round(time.Millisecond), masterDown(100))
	if o.gap > 2*time.Second {
		t.Errorf("service gap %v, want well under 2s", o.gap)
	}
	if g := l.haGroupOf("lb2"); g.Master != l.lbs["lb2"].addr.String() {
		t.Errorf("lb2 reports master %q, want itself", g.Master)
	}
	if mac := l.client.neighMAC(l.vip); mac != l.lbs["lb2"].mac {
		t.Errorf("client resolves the VIP to %q, want lb2's %s", mac, l.lbs["lb2"].mac)
	}

	// lb2 is alone now: its status says so once lb1's hellos have been
	// missed for 5s, and its log said it once, at WARN, when it took
	// over and when lb1 went.
	lb1 := l.lbs["lb1"].addr.String()
	waitUntil(t, 15*time.Second, "lb2's status warns of no redundancy", func() (bool, string) {
		out := l.lbs["lb2"].Run(binary, "status", "--admin", labAdmin)
		// lb2 may not have heard lb1's hello (it says hello once a
		// second) before lb1 died: then it has only the address.
		return regexp.MustCompile(`WARNING: no redundancy: peer ` + regexp.QuoteMeta(lb1) + `( \(lb1\))? gone, last heard `).MatchString(out), out
	})
	logs := l.nodes["lb2"].p.out.String()
	// The takeover once (no second line from the alert dispatcher, which
	// logs events at debug), at WARN. A flap on a loaded machine may add
	// a takeover of its own: count the lines per transition, not all.
	takeover := grepLines(logs, "state=master")
	if !strings.Contains(takeover, `level=WARN msg="state changed"`) || !strings.Contains(takeover, "reason=master_down") ||
		strings.Contains(takeover, "msg=event") {
		t.Errorf("lb2 logged taking over as:\n%s\nwant each transition once, at WARN with reason=master_down", takeover)
	}
	if gone := grepLines(logs, "ha peer gone"); strings.Count(gone, "ha peer gone") != 1 || !strings.Contains(gone, "level=WARN") || !strings.Contains(gone, "peer="+lb1) {
		t.Errorf("lb2 logged lb1 gone as:\n%s\nwant one WARN line", gone)
	}
}

// masterDown is RFC 9568's master-down interval at 100ms adverts.
func masterDown(prio int) time.Duration {
	return 300*time.Millisecond + time.Duration(256-prio)*100*time.Millisecond/256
}

// TestHACablePull: the master's switch port goes down, the backup takes
// over; the port comes back and the higher priority is master again,
// alone. Without tracking, lb1 stays master on its dead link, and the two
// masters resolve when they hear each other again; tracking eth0, lb1 goes
// to fault (giving up the VIP) and, back as backup, preempts.
func TestHACablePull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		track bool
	}{
		{"untracked", false},
		{"interface tracked", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := haOpts{}
			if tc.track {
				opts.extra = "      track: { interfaces: [eth0] }\n"
			}
			l := newHALab(t, opts)
			l.startAll()
			p := l.probe(time.Second)
			steady(t, p, 20)

			fault := time.Now()
			l.lbs["lb1"].cable(false)
			waitUntil(t, 5*time.Second, "lb2 master with the VIP", func() (bool, string) {
				states, holds, desc := l.roles()
				lb1 := states["lb1"] == "master" && holds["lb1"] // alone on its link
				if tc.track {
					lb1 = states["lb1"] == "fault" && !holds["lb1"]
				}
				return lb1 && states["lb2"] == "master" && holds["lb2"], desc
			})
			l.servedBy(p, "lb2", fault, 5*time.Second)
			steady(t, p, 10)
			o := summarize(p.finish())
			logOutage(t, "cable pull of the master", o, fault)
			if o.gap > 2*time.Second {
				t.Errorf("service gap %v, want well under 2s", o.gap)
			}

			p = l.probe(time.Second)
			steady(t, p, 10)
			back := time.Now()
			l.lbs["lb1"].cable(true)
			took := l.waitRoles("lb1", 5*time.Second)
			t.Logf("lb1 the only master %v after its cable is back", took.Round(time.Millisecond))
			l.servedBy(p, "lb1", back, 5*time.Second)
			steady(t, p, 10)
			o = summarize(p.finish())
			logOutage(t, "cable back", o, back)
			if mac := l.client.neighMAC(l.vip); mac != l.lbs["lb1"].mac {
				t.Errorf("client resolves the VIP to %q, want lb1's %s", mac, l.lbs["lb1"].mac)
			}
			if logs := l.nodes["lb1"].p.out.String(); tc.track && !strings.Contains(logs, "reason=preempt") {
				t.Errorf("lb1 did not take the VIP back by preempting:\n%s", logs)
			}
			// And it stays so.
			time.Sleep(500 * time.Millisecond)
			if ok, desc := l.settledOn("lb1"); !ok {
				t.Errorf("not settled on lb1 half a second later: %s", desc)
			}
		})
	}
}

// TestHANoPreempt: with preempt: false a returning higher-priority node
// stays backup (heartbeat's auto_failback off).
func TestHANoPreempt(t *testing.T) {
	t.Parallel()
	no := false
	l := newHALab(t, haOpts{preempt: &no})
	l.startAll()
	l.nodes["lb1"].kill9()
	l.waitRoles("lb2", 5*time.Second)

	l.start("lb1")
	l.waitRoles("lb2", 5*time.Second)
	// Several master-down intervals: a preempting lb1 would be master by
	// now.
	deadline := time.Now().Add(4 * masterDown(150))
	for time.Now().Before(deadline) {
		if ok, desc := l.settledOn("lb2"); !ok {
			t.Fatalf("lb2 lost the VIP with preempt off: %s", desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g := l.haGroupOf("lb1")
	if g.Master != l.lbs["lb2"].addr.String() || g.Preempt {
		t.Errorf("lb1: %+v; want backup of %v, preempt false", g, l.lbs["lb2"].addr)
	}
	resp, err := l.client.httpClient(5 * time.Second).Get(l.url())
	if err != nil {
		t.Fatalf("GET %s: %v", l.url(), err)
	}
	resp.Body.Close()
}

// TestHAPartition: the nodes cannot hear each other: both become master
// (split brain, as VRRP must); healed, the higher priority is the only
// master within about a second, and the client's neighbour entry for the
// VIP points at it again (the winner re-announces).
func TestHAPartition(t *testing.T) {
	requireNft(t)
	t.Parallel()
	l := newHALab(t, haOpts{})
	l.startAll()
	p := l.probe(time.Second)
	steady(t, p, 10)

	heal := l.partition(l.lbs["lb1"], l.lbs["lb2"])
	waitUntil(t, 5*time.Second, "both master", func() (bool, string) {
		states, holds, desc := l.roles()
		return states["lb1"] == "master" && states["lb2"] == "master" && holds["lb1"] && holds["lb2"], desc
	})
	t.Logf("split brain; the client resolves the VIP to %s (lb1 %s, lb2 %s)", l.client.neighMAC(l.vip), l.lbs["lb1"].mac, l.lbs["lb2"].mac)
	time.Sleep(300 * time.Millisecond)

	healed := time.Now()
	heal()
	took := l.waitRoles("lb1", 3*time.Second)
	t.Logf("lb1 the only master %v after the partition healed", took.Round(time.Millisecond))
	if took > 1500*time.Millisecond {
		t.Errorf("one master only after %v, want about a second at most", took)
	}
	waitUntil(t, 2*time.Second, "the client's neighbour entry for the VIP on lb1", func() (bool, string) {
		mac := l.client.neighMAC(l.vip)
		return mac == l.lbs["lb1"].mac, fmt.Sprintf("VIP at %q, lb1 is %s, lb2 %s", mac, l.lbs["lb1"].mac, l.lbs["lb2"].mac)
	})
	l.servedBy(p, "lb1", healed, 5*time.Second)
	o := summarize(p.finish())
	logOutage(t, "partition and heal", o, healed)
}

// TestHARelease: planned hand-overs — `fulcrum ha release` on lb1, then
// on lb2, then SIGTERM of lb1 — under a client whose requests each stay
// in flight 50 ms, uploading their body in two parts 30 ms apart, so that
// several have data in flight at every switch. The new
// master relays the old one's connections and the old one keeps its VIPs
// (quiet) until they are done: no request fails. Without nftables the
// connections open at the switch are reset (docs/ha.md); then only
// timeouts and refusals fail the test.
func TestHARelease(t *testing.T) {
	t.Parallel()
	_, nftErr := exec.LookPath("nft")
	l := newHALab(t, haOpts{})
	l.startAll()
	p := startUploadProber(t, l.client, l.url()+"?slow=20ms", 10*time.Millisecond, 2*time.Second, 3000, 30*time.Millisecond)
	steady(t, p, 20)

	var switches []time.Time
	start := time.Now()
	out := l.lbs["lb1"].Run(binary, "ha", "release", haGroupName, "--admin", labAdmin)
	t.Logf("fulcrum ha release: %s", strings.TrimSpace(out))
	took := l.waitRoles("lb2", 3*time.Second)
	l.servedBy(p, "lb2", start, 3*time.Second)
	g := l.haGroupOf("lb1")
	if g.State != "backup" || g.Master != l.lbs["lb2"].addr.String() {
		t.Errorf("lb1 %s following %q right after its release, want backup following lb2", g.State, g.Master)
	}
	switches = append(switches, g.Since)
	t.Logf("lb2 the only master %v after the release (at the latest: %v)", l.haGroupOf("lb2").Since.Sub(g.Since).Round(time.Millisecond), took.Round(time.Millisecond))

	// No preemption back while lb2 lives: well past any hold a timer
	// would give, lb1 is still backup.
	time.Sleep(4 * masterDown(150))
	if g := l.haGroupOf("lb1"); g.State != "backup" {
		t.Errorf("lb1 %s %v after its release, want backup while lb2 lives", g.State, time.Since(start).Round(time.Millisecond))
	}
	steady(t, p, 10)

	// lb2 releases in turn: lb1, the best backup, takes over.
	back := time.Now()
	out = l.lbs["lb2"].Run(binary, "ha", "release", haGroupName, "--admin", labAdmin)
	t.Logf("fulcrum ha release on lb2: %s", strings.TrimSpace(out))
	l.waitRoles("lb1", 3*time.Second)
	l.servedBy(p, "lb1", back, 3*time.Second)
	switches = append(switches, back)
	steady(t, p, 10)

	// SIGTERM of the master (systemctl stop): lb2 takes over, lb1 exits
	// once its connections are done.
	term := time.Now()
	l.nodes["lb1"].p.cmd.Process.Signal(syscall.SIGTERM)
	l.servedBy(p, "lb2", term, 3*time.Second)
	select {
	case <-l.nodes["lb1"].p.exited:
		t.Logf("lb1 exited %v after SIGTERM", time.Since(term).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Errorf("lb1 still running 15s after SIGTERM")
	}
	switches = append(switches, term)
	steady(t, p, 10)
	res := p.finish()

	// Each request belongs to the hand-over nearest to its start.
	names := []string{"ha release on lb1", "ha release on lb2", "SIGTERM of lb1"}
	groups := make([][]probeResult, len(switches))
	for _, r := range res {
		i := 0
		for j := range switches {
			if j > 0 && r.start.After(switches[j-1].Add(switches[j].Sub(switches[j-1])/2)) {
				i = j
			}
		}
		groups[i] = append(groups[i], r)
	}
	for i, w := range groups {
		o := summarize(w)
		var slowest time.Duration
		inFlight := 0 // requests open across the switch: those a hand-over could break
		for _, r := range w {
			slowest = max(slowest, r.end.Sub(r.start))
			if r.start.Before(switches[i].Add(time.Second)) && r.end.After(switches[i]) {
				inFlight++
			}
		}
		logOutage(t, names[i], o, switches[i])
		t.Logf("%s: slowest request %v, %d requests in flight during the first second", names[i], slowest.Round(time.Millisecond), inFlight)
		for _, r := range w {
			switch {
			case r.err == nil:
			case nftErr != nil && strings.Contains(r.err.Error(), "connection reset"):
				t.Logf("%s: request reset (no nft to relay it): %v", names[i], r.err)
			default:
				t.Errorf("%s: request failed: %v (want no request lost to a planned hand-over)", names[i], r.err)
			}
		}
	}
}

// TestHAForgedAdverts: with auth_key_file on both nodes, a third host's
// unauthenticated advert with a higher priority changes nothing, and is
// counted as dropped.
func TestHAForgedAdverts(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{auth: true, noTraffic: true})
	attacker := l.host("attacker", l.addr(ipAttacker))
	l.startAll()
	before1, before2 := l.haGroupOf("lb1"), l.haGroupOf("lb2")

	// A plain VRRP speaker on the attacker: it sends unauthenticated
	// adverts for our VRID with priority 254.
	var conn vrrp.Conn
	err := inNetns(attacker.ns, func() error {
		var err error
		conn, err = vrrp.Listen(vrrp.ConnOptions{Interface: attacker.ifname, Family: vrrp.IPv4})
		return err
	})
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}
	defer conn.Close()
	forged := vrrp.Advert{VRID: haVRID, Priority: 254, MaxAdvertInterval: 100 * time.Millisecond, Addrs: []netip.Addr{l.vip}}
	deadline := time.Now().Add(1500 * time.Millisecond)
	sent := 0
	for time.Now().Before(deadline) {
		if err := conn.Send(forged); err != nil {
			t.Fatalf("attacker send: %v", err)
		}
		sent++
		if ok, desc := l.settledOn("lb1"); !ok {
			t.Fatalf("a forged advert moved the VIP: %s", desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after1, after2 := l.haGroupOf("lb1"), l.haGroupOf("lb2")
	t.Logf("attacker sent %d adverts; dropped: lb1 %v, lb2 %v", sent, after1.Dropped, after2.Dropped)
	if after1.Transitions != before1.Transitions || after2.Transitions != before2.Transitions {
		t.Errorf("transitions: lb1 %d → %d, lb2 %d → %d; want none", before1.Transitions, after1.Transitions, before2.Transitions, after2.Transitions)
	}
	if after1.Dropped["auth"] == 0 || after2.Dropped["auth"] == 0 {
		t.Errorf("dropped for auth: lb1 %d, lb2 %d; want both > 0", after1.Dropped["auth"], after2.Dropped["auth"])
	}
	if after2.Master != l.lbs["lb1"].addr.String() || after2.MasterPriority != 150 {
		t.Errorf("lb2 follows master %s at priority %d, want lb1 (%v) at 150", after2.Master, after2.MasterPriority, l.lbs["lb1"].addr)
	}
}

// startKeepalived runs keepalived's VRRP (vrrp_version 3, an advert every
// advertInt seconds) in h for the lab's VIP.
func startKeepalived(h *host, prio int, vip netip.Addr, advertInt string) *proc {
	h.lab.t.Helper()
	dir := h.lab.t.TempDir()
	conf := fmt.Sprintf(`global_defs {
    router_id fulcrum_e2e_%s
    vrrp_version 3
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %s
    virtual_ipaddress {
        %v/24 dev %s
    }
}
`, h.name, h.ifname, haVRID, prio, advertInt, vip, h.ifname)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		h.lab.t.Fatal(err)
	}
	return h.Start("keepalived", "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", path, "--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"), "--checkers_pid", filepath.Join(dir, "checkers.pid"))
}

// crash stops every process of p's group at once, then kills them: no
// handler runs, no farewell advert leaves (keepalived's children would
// otherwise see their parent die and shut down cleanly).
func (p *proc) crash() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGSTOP)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// TestHAKeepalivedInterop: fulcrum and keepalived in one virtual router,
// each way round: the higher priority is master; when it dies the other
// takes the VIP; when it comes back it preempts.
func TestHAKeepalivedInterop(t *testing.T) {
	requireLab(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("skipping: keepalived is not installed (Debian package keepalived)")
	}
	t.Parallel()
	for _, tc := range []struct {
		name       string
		keepalived string // the node running keepalived
	}{
		{"fulcrum higher", "lb2"},
		{"keepalived higher", "lb1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newHALab(t, haOpts{keepalived: []string{tc.keepalived}, noTraffic: true})
			l.startAll() // lb1 (150) master, lb2 (100) backup
			fulcrum := "lb1"
			if tc.keepalived == "lb1" {
				fulcrum = "lb2"
			}
			time.Sleep(300 * time.Millisecond)
			ka := l.kas[tc.keepalived]
			if g := l.haGroupOf(fulcrum); fulcrum == "lb2" {
				// fulcrum is backup: it hears keepalived's adverts.
				if len(g.Dropped) != 0 || g.AdvertsReceived < 2 || g.Master != l.lbs["lb1"].addr.String() || g.MasterPriority != 150 {
					t.Errorf("fulcrum backup: %d adverts received, dropped %v, master %s at %d; want keepalived (%v) at 150",
						g.AdvertsReceived, g.Dropped, g.Master, g.MasterPriority, l.lbs["lb1"].addr)
				}
			} else if !strings.Contains(ka.out.String(), "Entering BACKUP STATE") {
				// keepalived is backup: it accepts our adverts, or it
				// would be master by now.
				t.Errorf("keepalived never entered backup state")
			}

			// The master dies.
			if tc.keepalived == "lb1" {
				l.kas["lb1"].crash()
			} else {
				l.nodes["lb1"].kill9()
			}
			took := l.waitRoles("lb2", 5*time.Second)
			t.Logf("lb2 the only master %v after lb1 died", took.Round(time.Millisecond))

			// It comes back and preempts.
			l.start("lb1")
			took = l.waitRoles("lb1", 10*time.Second)
			t.Logf("lb1 the only master %v after it restarted", took.Round(time.Millisecond))
			time.Sleep(500 * time.Millisecond)
			if ok, desc := l.settledOn("lb1"); !ok {
				t.Errorf("not settled on lb1 half a second later: %s", desc)
			}
			if ka := l.kas[tc.keepalived]; strings.Contains(strings.ToLower(ka.out.String()), "checksum") {
				t.Errorf("keepalived complains about checksums:\n%s", ka.out)
			}
		})
	}
}

// TestHAInitDeadKeepalived: a mixed cluster during a migration. keepalived
// (priority 100, its default advert_int 1) is master; the fulcrum node
// (priority 150, preempt off, 100ms adverts) restarts next to it. Its own
// master-down interval is 0.24s, so without a listen period it would
// claim the VIP before keepalived's next advert in about three starts out
// of four; with the default initdead (2s) it hears keepalived first, every
// time, and stays backup. Three restarts.
func TestHAInitDeadKeepalived(t *testing.T) {
	requireLab(t)
	t.Parallel()
	no := false
	l := newHALab(t, haOpts{keepalived: []string{"lb2"}, kaAdvertInt: "1", preempt: &no, noTraffic: true})
	l.start("lb2")
	l.waitRoles("lb2", 15*time.Second) // keepalived's own master-down: 3.6s
	for i := range 3 {
		l.start("lb1")
		// Past the listen period and several of keepalived's adverts.
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			states, holds, desc := l.roles()
			if states["lb1"] == "master" || holds["lb1"] || !holds["lb2"] {
				t.Fatalf("start %d: the restarted fulcrum node took the VIP from keepalived: %s\n%s", i+1, desc, l.nodes["lb1"].p.out)
			}
			time.Sleep(20 * time.Millisecond)
		}
		g := l.haGroupOf("lb1")
		if g.State != "backup" || g.Master != l.lbs["lb2"].addr.String() || g.MasterIntervalMS != 1000 || !g.ListenUntil.IsZero() {
			t.Errorf("start %d: lb1 %+v; want backup of keepalived (%v) advertising every 1000ms, no longer listening",
				i+1, g, l.lbs["lb2"].addr)
		}
		l.nodes["lb1"].kill9()
	}
}

// TestHAAdminStateShared: `fulcrum backend drain` on one node drains the
// backend on its peer too (they share the config, they share a drain),
// with authenticated hellos; each node's status says the state is shared,
// and ",node-only" once the peer is gone.
func TestHAAdminStateShared(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{auth: true})
	l.startAll()
	be1 := fmt.Sprintf("%v:8080", l.addr(ipBackend1))
	if out := l.lbs["lb1"].Run(binary, "backend", "drain", "web", be1, "--admin", labAdmin); !strings.Contains(out, ": drain") {
		t.Fatalf("lb1 backend drain: %s", out)
	}
	adminOf := func(node string) (admin.Backend, string) {
		st, err := l.nodes[node].status()
		if err != nil {
			return admin.Backend{}, err.Error()
		}
		for _, b := range st.Services[0].Backends {
			if b.Address == be1 {
				return b, fmt.Sprintf("%s: %s set on %q scope %q", node, b.AdminState, b.AdminSetOn, b.AdminScope)
			}
		}
		return admin.Backend{}, node + ": no backend " + be1
	}
	waitUntil(t, 10*time.Second, "lb2 drains it too, both say shared", func() (bool, string) {
		b1, d1 := adminOf("lb1")
		b2, d2 := adminOf("lb2")
		return b2.AdminState == "drain" && b2.AdminSetOn == "lb1" && b2.AdminScope == "peers" && b1.AdminScope == "peers", d1 + "; " + d2
	})
	if out := l.lbs["lb2"].Run(binary, "status", "--admin", labAdmin); !regexp.MustCompile(`(?m)^  -> ` + regexp.QuoteMeta(be1) + ` +primary +up +drain `).MatchString(out) {
		t.Errorf("lb2's status does not show %s drained, shared:\n%s", be1, out)
	}

	l.nodes["lb2"].kill9()
	waitUntil(t, 15*time.Second, "lb1 says its drain is its own", func() (bool, string) {
		out := l.lbs["lb1"].Run(binary, "status", "--admin", labAdmin)
		return strings.Contains(out, "drain,node-only") && strings.Contains(out, ",node-only: admin state set at runtime on this node alone"), out
	})
	// lb2 comes back: it takes lb1's drain from lb1's next datagram.
	l.start("lb2")
	waitUntil(t, 10*time.Second, "the restarted lb2 drains it again", func() (bool, string) {
		b2, d2 := adminOf("lb2")
		return b2.AdminState == "drain" && b2.AdminSetOn == "lb1", d2
	})
}

// TestHAConfigHashAcrossPeers: with authenticated adverts the backup
// learns the master's config hash; `fulcrum status` on it says the
// configs agree, and warns once the master reloads another config
// (through `fulcrum reload`); the master, through the backup's
// authenticated hellos, warns too.
func TestHAConfigHashAcrossPeers(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{auth: true, noTraffic: true})
	l.startAll()
	lb1Addr := l.lbs["lb1"].addr.String()
	peerHash := func() (string, string) {
		g := l.haGroupOf("lb2")
		for _, p := range g.Peers {
			if p.Address == lb1Addr {
				return p.ConfigHash, ""
			}
		}
		return "", fmt.Sprintf("lb2's peers: %+v", g.Peers)
	}
	st1, err := l.nodes["lb1"].status()
	if err != nil {
		t.Fatal(err)
	}
	st2, err := l.nodes["lb2"].status()
	if err != nil {
		t.Fatal(err)
	}
	if st1.ConfigHash != st2.ConfigHash {
		t.Fatalf("identical configs but for node.name: hashes %s and %s", st1.ConfigHash, st2.ConfigHash)
	}
	waitUntil(t, 5*time.Second, "lb2 hears lb1's config hash", func() (bool, string) {
		h, desc := peerHash()
		return h == st1.ConfigHash[:16], desc + " hash " + h
	})
	out := l.lbs["lb2"].Run(binary, "status", "--admin", labAdmin)
	if want := regexp.MustCompile(`peers heard: ` + regexp.QuoteMeta(lb1Addr) + `( \(lb1 master\))? priority 150 \S+ ago \(same config\)`); !want.MatchString(out) {
		t.Errorf("lb2's status lacks %q:\n%s", want, out)
	}

	// lb1 gets another config: its adverts carry the new hash at once.
	cfg := strings.Replace(l.config("lb1"), "scheduler: rr", "scheduler: wrr", 1)
	if err := os.WriteFile(l.nodes["lb1"].config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := l.lbs["lb1"].Run(binary, "reload", "--admin", labAdmin); !strings.HasPrefix(out, "reloaded: config ") {
		t.Fatalf("lb1 reload: %s", out)
	}
	st1, err = l.nodes["lb1"].status()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "lb2 hears lb1's new config hash", func() (bool, string) {
		h, desc := peerHash()
		return h == st1.ConfigHash[:16], desc + " hash " + h
	})
	out = l.lbs["lb2"].Run(binary, "status", "--admin", labAdmin)
	want := fmt.Sprintf("WARNING: peer %s runs config %.12s, this node %.12s", lb1Addr, st1.ConfigHash, st2.ConfigHash)
	if !strings.Contains(out, want) {
		t.Errorf("lb2's status lacks %q:\n%s", want, out)
	}
	// The master learns the backup's hash from its authenticated hellos.
	want = fmt.Sprintf("WARNING: peer %s runs config %.12s, this node %.12s", l.lbs["lb2"].addr, st2.ConfigHash, st1.ConfigHash)
	waitUntil(t, 5*time.Second, "lb1 warns about lb2's config", func() (bool, string) {
		out := l.lbs["lb1"].Run(binary, "status", "--admin", labAdmin)
		return strings.Contains(out, want), out
	})
	if g := l.haGroupOf("lb1"); len(g.HelloDropped) != 0 {
		t.Errorf("lb1 dropped authenticated hellos: %v", g.HelloDropped)
	}
}

// TestHAConfigHashHello: without auth_key_file the adverts carry no hash;
// the hello (ha.hello_port, multicast here) tells each node which config
// the other runs, so `fulcrum status` warns on the master as on the
// backup, and stops warning once the configs agree again.
func TestHAConfigHashHello(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{noTraffic: true})
	l.startAll()
	addr := map[string]string{"lb1": l.lbs["lb1"].addr.String(), "lb2": l.lbs["lb2"].addr.String()}
	other := map[string]string{"lb1": "lb2", "lb2": "lb1"}
	hashOf := func(node string) string {
		st, err := l.nodes[node].status()
		if err != nil {
			t.Fatal(err)
		}
		return st.ConfigHash
	}
	// peerHash is the hash node has heard from the other node.
	peerHash := func(node string) (string, string) {
		g := l.haGroupOf(node)
		for _, p := range g.Peers {
			if p.Address == addr[other[node]] {
				return p.ConfigHash, fmt.Sprintf("%s's peer %+v", node, p)
			}
		}
		return "", fmt.Sprintf("%s's peers: %+v", node, g.Peers)
	}
	waitHashes := func(what string) (h1, h2 string) {
		t.Helper()
		h1, h2 = hashOf("lb1"), hashOf("lb2")
		waitUntil(t, 5*time.Second, what, func() (bool, string) {
			p1, d1 := peerHash("lb1")
			p2, d2 := peerHash("lb2")
			return p1 == h2[:16] && p2 == h1[:16], d1 + "; " + d2
		})
		return h1, h2
	}
	status := func(node string) string {
		return l.lbs[node].Run(binary, "status", "--admin", labAdmin)
	}
	reload := func(node, cfg string) {
		t.Helper()
		if err := os.WriteFile(l.nodes[node].config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := l.lbs[node].Run(binary, "reload", "--admin", labAdmin); !strings.HasPrefix(out, "reloaded: config ") {
			t.Fatalf("%s reload: %s", node, out)
		}
	}

	h1, h2 := waitHashes("both nodes hear each other's hash")
	if h1 != h2 {
		t.Fatalf("identical configs but for node.name: hashes %s and %s", h1, h2)
	}
	for node, peerState := range map[string]string{"lb1": "lb2 backup", "lb2": "lb1 master"} {
		out := status(node)
		want := regexp.MustCompile(`peers heard: ` + regexp.QuoteMeta(addr[other[node]]) + ` \(` + peerState + `\) priority \d+ \S+ ago \(same config\)`)
		if !want.MatchString(out) || strings.Contains(out, "WARNING") {
			t.Errorf("%s's status: want %q and no warning:\n%s", node, want, out)
		}
	}

	// lb1, the master, gets another config: both warn.
	orig := l.config("lb1")
	reload("lb1", strings.Replace(orig, "scheduler: rr", "scheduler: wrr", 1))
	h1, h2 = waitHashes("both nodes hear lb1's new hash")
	if h1 == h2 {
		t.Fatal("the reload did not change lb1's hash")
	}
	for node, hashes := range map[string][2]string{"lb1": {h2, h1}, "lb2": {h1, h2}} {
		want := fmt.Sprintf("WARNING: peer %s runs config %.12s, this node %.12s", addr[other[node]], hashes[0], hashes[1])
		if out := status(node); !strings.Contains(out, want) {
			t.Errorf("%s's status lacks %q:\n%s", node, want, out)
		}
	}
	resp, err := l.nodes["lb1"].client.Get("http://" + labAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if out := string(metrics); !strings.Contains(out, `fulcrum_ha_peer_config_match{group="`+haGroupName+`",peer="`+addr["lb2"]+`"} 0`) {
		t.Errorf("lb1's metrics lack the mismatch:\n%s", grepLines(out, "config_match"))
	}

	// Back to the same config: the warnings go.
	reload("lb1", orig)
	h1, h2 = waitHashes("both nodes hear lb1's restored hash")
	if h1 != h2 {
		t.Fatalf("restored config: hashes %s and %s", h1, h2)
	}
	for _, node := range []string{"lb1", "lb2"} {
		if out := status(node); strings.Contains(out, "WARNING") || !strings.Contains(out, "(same config)") {
			t.Errorf("%s's status after the configs agree again:\n%s", node, out)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
