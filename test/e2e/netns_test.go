package e2e

// A small network lab for tests that need real hosts: a bridge in a
// namespace of its own (the switch) and hosts, each a namespace joined to
// the bridge by a veth pair, with one address in a private /24 made for
// the test. Nothing is created outside these namespaces; everything is
// torn down when the test ends, also when it fails.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// labSeq numbers the labs of this process; with the pid it makes every
// namespace name unique on the machine.
var labSeq atomic.Int32

// requireLab skips t unless it can build a lab: root and iproute2.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (Debian package iproute2)")
	}
}

// lab is one test's switched LAN.
type lab struct {
	t      *testing.T
	id     string       // "<pid>-<n>", in every namespace name
	sw     string       // the switch's namespace, holding bridge br0
	prefix netip.Prefix // the hosts' /24

	mu    sync.Mutex
	hosts map[string]*host
}

// newLab makes an empty switch: a namespace with bridge br0 (no STP, so
// ports forward at once; no multicast snooping, so VRRP's multicast
// reaches every port).
func newLab(t *testing.T) *lab {
	t.Helper()
	n := labSeq.Add(1)
	return openLab(t, n, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(n), 0}), 24))
}

// newLabOn is newLab with the hosts in prefix. The lab is closed off in
// its namespaces, so any prefix will do, even one the machine itself
// uses: the examples' tests run the tutorials' own addresses.
func newLabOn(t *testing.T, prefix netip.Prefix) *lab {
	t.Helper()
	return openLab(t, labSeq.Add(1), prefix)
}

func openLab(t *testing.T, n int32, prefix netip.Prefix) *lab {
	t.Helper()
	requireLab(t)
	l := &lab{
		t:      t,
		id:     fmt.Sprintf("%d-%d", os.Getpid(), n),
		prefix: prefix,
		hosts:  map[string]*host{},
	}
	l.sw = "fulcrum-e2e-" + l.id + "-sw"
	l.addNetns(l.sw)
	l.ip("-n", l.sw, "link", "set", "lo", "up")
	l.ip("-n", l.sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
	l.ip("-n", l.sw, "link", "set", "br0", "up")
	return l
}

// addr returns the address with last byte b in the lab's /24.
func (l *lab) addr(b byte) netip.Addr {
	a := l.prefix.Addr().As4()
	a[3] = b
	return netip.AddrFrom4(a)
}

// addNetns creates a namespace that is deleted, with whatever still runs
// in it, when the test ends.
func (l *lab) addNetns(ns string) {
	l.t.Helper()
	l.ip("netns", "add", ns)
	l.t.Cleanup(func() {
		// Processes still inside (a forked child of something the test
		// started) would keep the namespace and its links alive.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Logf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
}

// ip runs the ip command and fails the test when it fails.
func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// host is a namespace on the lab's switch. Inside it the link is called
// eth0; on the switch, port.
type host struct {
	lab    *lab
	name   string
	ns     string
	addr   netip.Addr
	ifname string // inside ns
	port   string // the switch-side end, in lab.sw
	mac    string
}

// host adds a namespace named after name, joined to the switch, with addr
// (in the lab's /24) on its eth0, and waits until the link carries
// traffic.
func (l *lab) host(name string, addr netip.Addr) *host {
	l.t.Helper()
	if !l.prefix.Contains(addr) {
		l.t.Fatalf("host %s: address %v outside the lab's %v", name, addr, l.prefix)
	}
	return l.hostOn(name, netip.PrefixFrom(addr, l.prefix.Bits()))
}

// hostOn is host with an address in any subnet: several subnets can share
// the lab's switch, as a back-end network beside the front one.
func (l *lab) hostOn(name string, addr netip.Prefix) *host {
	l.t.Helper()
	h := &host{
		lab:    l,
		name:   name,
		ns:     "fulcrum-e2e-" + l.id + "-" + name,
		addr:   addr.Addr(),
		ifname: "eth0",
		port:   "p-" + name,
	}
	if len(h.port) > 15 {
		l.t.Fatalf("host name %q too long for an interface name", name)
	}
	l.mu.Lock()
	if l.hosts[name] != nil {
		l.mu.Unlock()
		l.t.Fatalf("host %s added twice", name)
	}
	l.hosts[name] = h
	l.mu.Unlock()

	l.addNetns(h.ns)
	l.ip("-n", l.sw, "link", "add", h.port, "type", "veth", "peer", "name", h.ifname, "netns", h.ns)
	l.ip("-n", l.sw, "link", "set", h.port, "master", "br0", "up")
	// IPv4 only, and quiet: no IPv6 autoconfiguration, router
	// solicitations or MLD reports on the test LAN.
	l.ip("-n", h.ns, "link", "set", h.ifname, "addrgenmode", "none")
	l.ip("-n", h.ns, "link", "set", "lo", "up")
	l.ip("-n", h.ns, "addr", "add", addr.String(), "dev", h.ifname)
	l.ip("-n", h.ns, "link", "set", h.ifname, "up")
	h.mac = h.linkField(h.ifname, "address")
	h.waitCarrier()
	return h
}

// linkField reads one field of ip -j link show.
func (h *host) linkField(dev, field string) string {
	h.lab.t.Helper()
	var links []map[string]any
	out := h.lab.ip("-j", "-n", h.ns, "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		h.lab.t.Fatalf("ip -j link show %s in %s: %v: %s", dev, h.ns, err, out)
	}
	s, _ := links[0][field].(string)
	return s
}

// waitCarrier waits until eth0 is operationally up: a veth transmits only
// once link watch has seen its carrier, up to a second after "up", and
// drops what is sent before.
func (h *host) waitCarrier() {
	h.lab.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.linkField(h.ifname, "operstate") != "UP" {
		if time.Now().After(deadline) {
			h.lab.t.Fatalf("%s: %s not up after 5s", h.name, h.ifname)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cable sets the host's switch port down (the cable pulled) or up.
func (h *host) cable(up bool) {
	h.lab.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	h.lab.ip("-n", h.lab.sw, "link", "set", h.port, state)
}

// Run runs a command inside the host (ip netns exec) and returns its
// combined output; a failure fails the test. Call it from the test's
// goroutine.
func (h *host) Run(args ...string) string {
	h.lab.t.Helper()
	out, err := h.Try(args...)
	if err != nil {
		h.lab.t.Fatalf("%s: %s: %v: %s", h.name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command inside the host and returns its output and error.
func (h *host) Try(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns}, args...)...)
	cmd.Env = raceQuickExit()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// raceQuickExit is the environment with the race detector's one-second
// sleep at exit turned off, for commands (the -race fulcrum CLI) whose
// return the test waits for.
func raceQuickExit() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// hasAddr reports whether a is on the host's eth0. It asks netlink from
// a thread in the namespace rather than running ip: tests poll it.
func (h *host) hasAddr(a netip.Addr) bool {
	h.lab.t.Helper()
	var addrs []net.Addr
	err := inNetns(h.ns, func() error {
		ifi, err := net.InterfaceByName(h.ifname)
		if err != nil {
			return err
		}
		addrs, err = ifi.Addrs()
		return err
	})
	if err != nil {
		h.lab.t.Fatalf("%s: addresses of %s: %v", h.name, h.ifname, err)
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// neighMAC is the link-layer address the host's neighbour table holds for
// a, "" if none.
func (h *host) neighMAC(a netip.Addr) string {
	h.lab.t.Helper()
	var entries []struct {
		LLAddr string `json:"lladdr"`
	}
	out := h.lab.ip("-j", "-n", h.ns, "neigh", "show", a.String(), "dev", h.ifname)
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		h.lab.t.Fatalf("ip -j neigh show: %v: %s", err, out)
	}
	if len(entries) == 0 {
		return ""
	}
	return entries[0].LLAddr
}

// proc is a background process in a host.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *syncbuf.Buffer // the process's output
	exited chan struct{}
	err    error
}

// Start runs a command in the background inside the host, with its
// output captured. It is killed (SIGKILL) when the test ends, and its
// output logged if the test failed.
func (h *host) Start(name string, args ...string) *proc {
	h.lab.t.Helper()
	p := &proc{name: h.name + "/" + name, out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	// ip netns exec execs the command: the process is the command itself.
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", h.ns}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		h.lab.t.Fatalf("%s: start %s: %v", h.name, name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t := h.lab.t
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.out)
		}
	})
	return p
}

// kill sends SIGKILL to the process's group (the process and whatever it
// forked) and waits for the process to exit.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// inNetns runs fn inside network namespace ns; see netns.Do.
func inNetns(ns string, fn func() error) error { return netns.Do(ns, fn) }

// dial connects from inside the host. The connection can be used from
// any goroutine.
func (h *host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(h.ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listen opens a listener inside the host.
func (h *host) listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(h.ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// httpClient makes HTTP requests from inside the host, a new connection
// for each, each bounded by timeout.
func (h *host) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       h.dial,
			DisableKeepAlives: true,
		},
	}
}

// serveHTTP runs handler on addr inside the host until the test ends.
func (h *host) serveHTTP(addr string, handler http.Handler) {
	h.lab.t.Helper()
	ln, err := h.listen("tcp", addr)
	if err != nil {
		h.lab.t.Fatalf("%s: listen %s: %v", h.name, addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	h.lab.t.Cleanup(func() { srv.Close() })
}

// requireNft skips t unless nftables is installed.
func requireNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: partitions need nft (Debian package nftables)")
	}
}

// partition drops every frame the switch would forward between a and b,
// in both directions, while both still reach every other host. It
// returns the function that heals it.
func (l *lab) partition(a, b *host) (heal func()) {
	l.t.Helper()
	return l.switchDrops("part_"+a.name+"_"+b.name,
		fmt.Sprintf("iifname %q oifname %q drop", a.port, b.port),
		fmt.Sprintf("iifname %q oifname %q drop", b.port, a.port))
}

// switchDrops installs rules (nft bridge filter rules) on the switch's
// forwarding path, in a table of its own, and returns the function that
// removes them.
func (l *lab) switchDrops(table string, rules ...string) (remove func()) {
	l.t.Helper()
	nft := fmt.Sprintf("table bridge %s {\n\tchain filter {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\t%s\n\t}\n}\n",
		table, strings.Join(rules, "\n\t\t"))
	cmd := exec.Command("ip", "netns", "exec", l.sw, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft -f: %v: %s\n%s", err, out, nft)
	}
	return func() {
		l.t.Helper()
		if out, err := exec.Command("ip", "netns", "exec", l.sw, "nft", "delete", "table", "bridge", table).CombinedOutput(); err != nil {
			l.t.Fatalf("nft delete table: %v: %s", err, out)
		}
	}
}

// lbNode is fulcrum running in a host, its admin API on 127.0.0.1:9900
// there.
type lbNode struct {
	h      *host
	config string
	p      *proc
	client *http.Client
}

const labAdmin = "127.0.0.1:9900"

// startFulcrum writes cfg and runs `fulcrum run` on it inside h until the
// test ends, and waits until its admin API answers.
func startFulcrum(h *host, cfg string) *lbNode {
	h.lab.t.Helper()
	n := &lbNode{h: h, client: h.httpClient(5 * time.Second)}
	n.config = filepath.Join(h.lab.t.TempDir(), "fulcrum-"+h.name+".yaml")
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		h.lab.t.Fatal(err)
	}
	n.start()
	return n
}

// start (re)starts the process on the same config.
func (n *lbNode) start() {
	n.h.lab.t.Helper()
	// At nice -10, as a balancer runs beside bulk work: VRRP's master-down
	// interval at 100 ms adverts is ~0.35 s, and on a machine loaded with
	// compilers a master at the same priority as them was starved that
	// long, so that a backup took over from a live master (seen in
	// TestHAForgedAdverts, TestHACablePull and TestHARelease under load).
	n.p = n.h.Start("fulcrum", "nice", "-n", "-10", binary, "run", "-c", n.config)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !n.p.running() {
			n.h.lab.t.Fatalf("%s: fulcrum exited at start: %v\n%s", n.h.name, n.p.err, n.p.out)
		}
		resp, err := n.client.Get("http://" + labAdmin + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			n.h.lab.t.Fatalf("%s: fulcrum not ready after 30s\n%s", n.h.name, n.p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the process with SIGKILL: no farewell advert, the VIP stays
// on the interface (as after a crash).
func (n *lbNode) kill9() {
	n.p.kill()
}

// status fetches the node's status; it returns an error rather than
// failing the test, since callers poll nodes that may be dead.
func (n *lbNode) status() (*admin.Status, error) {
	resp, err := n.client.Get("http://" + labAdmin + "/api/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("status: %s: %s", resp.Status, body)
	}
	var st admin.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// haGroup returns the node's status of HA group name.
func (n *lbNode) haGroup(name string) (admin.HAGroup, error) {
	st, err := n.status()
	if err != nil {
		return admin.HAGroup{}, err
	}
	for _, g := range st.HA {
		if g.Name == name {
			return g, nil
		}
	}
	return admin.HAGroup{}, errors.New("no ha group " + name)
}

// prober requests a URL from a host every interval, each request on a new
// connection and in its own goroutine (so that one hanging request does
// not hide the recovery of the next), bounded in count and time.
type prober struct {
	client   *http.Client
	url      string
	interval time.Duration
	max      int
	// upload, if set, makes each request a POST whose body is sent in two
	// parts this far apart: the client has data in flight the whole time,
	// as an upload does, so a connection cut under it fails for sure.
	upload time.Duration

	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	res  []probeResult
}

type probeResult struct {
	start, end time.Time
	body       string // the backend's answer
	err        error
}

// startProber begins requesting url from h every interval, at most max
// requests, each bounded by timeout.
func startProber(t *testing.T, h *host, url string, interval, timeout time.Duration, max int) *prober {
	return startUploadProber(t, h, url, interval, timeout, max, 0)
}

// startUploadProber is startProber whose requests upload a body in two
// parts upload apart (see prober.upload).
func startUploadProber(t *testing.T, h *host, url string, interval, timeout time.Duration, max int, upload time.Duration) *prober {
	p := &prober{
		upload:   upload,
		client:   h.httpClient(timeout),
		url:      url,
		interval: interval,
		max:      max,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go p.run()
	t.Cleanup(func() { p.finish() })
	return p
}

func (p *prober) run() {
	defer close(p.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for range p.max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := probeResult{start: time.Now()}
			var resp *http.Response
			var err error
			if p.upload > 0 {
				resp, err = p.client.Post(p.url, "text/plain", &pausingReader{pause: p.upload})
			} else {
				resp, err = p.client.Get(p.url)
			}
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
				r.body = string(b)
			}
			r.end, r.err = time.Now(), err
			p.mu.Lock()
			p.res = append(p.res, r)
			p.mu.Unlock()
		}()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// pausingReader yields "part1", waits pause, yields "part2", then EOF.
type pausingReader struct {
	pause time.Duration
	n     int
}

func (r *pausingReader) Read(b []byte) (int, error) {
	r.n++
	switch r.n {
	case 1:
		return copy(b, "part1"), nil
	case 2:
		time.Sleep(r.pause)
		return copy(b, "part2"), nil
	}
	return 0, io.EOF
}

// finish stops issuing requests, waits for those in flight and returns
// every result in order of completion.
func (p *prober) finish() []probeResult {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}

// results returns the results so far, in order of completion.
func (p *prober) results() []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]probeResult(nil), p.res...)
}

// outage summarises results: the longest time between two consecutive
// successes (by completion; the service gap when the window holds one
// fault), the last success before it and the first after, and the number
// of failed requests.
type outage struct {
	gap         time.Duration
	before      time.Time
	after       time.Time
	ok, failed  int
	firstErrors []string
}

func summarize(res []probeResult) outage {
	res = slices.Clone(res)
	slices.SortFunc(res, func(a, b probeResult) int { return a.end.Compare(b.end) })
	var o outage
	var last time.Time
	for _, r := range res {
		if r.err != nil {
			o.failed++
			if len(o.firstErrors) < 3 {
				o.firstErrors = append(o.firstErrors, r.err.Error())
			}
			continue
		}
		o.ok++
		if !last.IsZero() && r.end.Sub(last) > o.gap {
			o.gap, o.before, o.after = r.end.Sub(last), last, r.end
		}
		last = r.end
	}
	return o
}
