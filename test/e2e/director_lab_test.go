package e2e

// The pieces of a director lab (forwarding: direct and tunnel): real
// servers that hold the VIP themselves and answer the client directly, a
// router between two subnets for tunnelling, long-lived TCP streams that
// must live through a fail-over, and the interface counters that show
// which host carried the bytes.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// realserverUp prepares h to take VIP traffic the way `fulcrum
// realserver up` does: mode "direct" (the VIP on a non-ARPing interface)
// or "tunnel" (and the decapsulation of what the director encapsulates).
func realserverUp(h *host, mode string, vip netip.Addr) {
	h.lab.t.Helper()
	// The state file (default /run/fulcrum) is the host's, not the
	// namespace's: one per real server.
	state := filepath.Join(h.lab.t.TempDir(), "realserver-"+h.name+".json")
	out := h.Run(binary, "realserver", "up", "--state", state, "--mode", mode, vip.String())
	h.lab.t.Logf("%s: fulcrum realserver up --mode %s %v:\n%s", h.name, mode, vip, strings.TrimSpace(out))
}

// router adds a host joined to both the lab's switch (bridge br0, with
// front) and a second bridge of the same switch (with back), forwarding
// between them: the back subnet is reached only through it. Hosts on the
// back subnet are made with backHost.
func (l *lab) router(name string, front, back netip.Prefix) *host {
	l.t.Helper()
	r := l.hostOn(name, front)
	l.ensureBridge("br1")
	port := "p1-" + name
	if len(port) > 15 {
		l.t.Fatalf("router name %q too long for an interface name", name)
	}
	l.ip("-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", r.ns)
	l.ip("-n", l.sw, "link", "set", port, "master", "br1", "up")
	l.ip("-n", r.ns, "link", "set", "eth1", "addrgenmode", "none")
	l.ip("-n", r.ns, "addr", "add", back.String(), "dev", "eth1")
	l.ip("-n", r.ns, "link", "set", "eth1", "up")
	// Forward, and let replies from the VIP (an address of the front
	// subnet) in through the back interface: they come from the real
	// servers, which answer the clients directly.
	for _, kv := range []string{
		"net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.eth0.rp_filter=0",
		"net.ipv4.conf.eth1.rp_filter=0",
	} {
		r.Run("sysctl", "-q", "-w", kv)
	}
	return r
}

// ensureBridge adds bridge name to the switch once.
func (l *lab) ensureBridge(name string) {
	l.t.Helper()
	if exec.Command("ip", "-n", l.sw, "link", "show", "dev", name).Run() == nil {
		return
	}
	l.ip("-n", l.sw, "link", "add", name, "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
	l.ip("-n", l.sw, "link", "set", name, "up")
}

// backHost is a host on the second bridge (see router), with addr and a
// default route through gw.
func (l *lab) backHost(name string, addr netip.Prefix, gw netip.Addr) *host {
	l.t.Helper()
	h := l.hostOn(name, addr)
	l.ensureBridge("br1")
	l.ip("-n", l.sw, "link", "set", h.port, "master", "br1")
	l.ip("-n", h.ns, "route", "add", "default", "via", gw.String())
	return h
}

// ifStats returns the bytes and packets that dev of h received and sent.
type ifStats struct{ rxBytes, txBytes, rxPackets, txPackets uint64 }

func (h *host) ifStats(dev string) ifStats {
	h.lab.t.Helper()
	var links []struct {
		Stats struct {
			RX struct{ Bytes, Packets uint64 } `json:"rx"`
			TX struct{ Bytes, Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	out := h.lab.ip("-j", "-s", "-n", h.ns, "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		h.lab.t.Fatalf("ip -j -s link show %s in %s: %v: %s", dev, h.name, err, out)
	}
	s := links[0].Stats
	return ifStats{rxBytes: s.RX.Bytes, txBytes: s.TX.Bytes, rxPackets: s.RX.Packets, txPackets: s.TX.Packets}
}

func (s ifStats) sub(o ifStats) ifStats {
	return ifStats{s.rxBytes - o.rxBytes, s.txBytes - o.txBytes, s.rxPackets - o.rxPackets, s.txPackets - o.txPackets}
}

// echoServer is a TCP service of a real server: to every connection it
// first writes its name and a newline, then echoes every byte it reads.
// It listens on all addresses of the host: the real server's own (the
// director's health checks) and the VIP (the clients' packets).
type echoServer struct {
	name string
	*connServer
}

func startEcho(h *host, name string, port int) *echoServer {
	h.lab.t.Helper()
	ln, err := h.listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		h.lab.t.Fatalf("%s: listen :%d: %v", h.name, port, err)
	}
	s := &echoServer{name: name}
	s.connServer = serveConns(ln, s.serve)
	h.lab.t.Cleanup(s.close)
	return s
}

func (s *echoServer) serve(c net.Conn) {
	if _, err := io.WriteString(c, s.name+"\n"); err != nil {
		return
	}
	io.Copy(c, c)
}

func (s *echoServer) close() { s.closeAll() }

// stream is one long-lived TCP connection of a client: every interval it
// makes one exchange (a byte sent and echoed, or an HTTP request on a
// kept-alive connection), as a terminal session or a chat does, until
// stopped, for at most maxRounds, or until it fails.
type stream struct {
	c       net.Conn
	r       *bufio.Reader
	backend string // the real server that answered first
	// round makes exchange i and returns who answered ("" if the
	// exchange does not say).
	round  func(s *stream, i int64) (string, error)
	rounds atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error // set before done is closed
}

// dialFrom connects from h (from src when valid) to addr.
func dialFrom(h *host, src netip.Addr, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	var c net.Conn
	err := inNetns(h.ns, func() error {
		var err error
		c, err = d.DialContext(context.Background(), "tcp", addr)
		return err
	})
	return c, err
}

// openStream connects from h to the echo service addr, reads the real
// server's name and starts a byte's echo every interval.
func openStream(t *testing.T, h *host, src netip.Addr, addr string, interval time.Duration, maxRounds int64) (*stream, error) {
	c, err := dialFrom(h, src, addr)
	if err != nil {
		return nil, err
	}
	s := &stream{c: c, r: bufio.NewReader(c), round: echoRound, stop: make(chan struct{}), done: make(chan struct{})}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	name, err := s.r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: reading the real server's name: %w", addr, err)
	}
	s.backend = strings.TrimSpace(name)
	go s.run(interval, maxRounds)
	t.Cleanup(s.close)
	return s, nil
}

func echoRound(s *stream, i int64) (string, error) {
	b := []byte{byte('a' + i%26)}
	want := b[0]
	if _, err := s.c.Write(b); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(s.r, b); err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if b[0] != want {
		return "", fmt.Errorf("got %q, want %q", b[0], want)
	}
	return "", nil
}

// openHTTPStream connects from h to addr (a web service of realServers)
// and requests url's path on the one connection every interval, HTTP/1.1
// keep-alive; the first answer names the real server.
func openHTTPStream(t *testing.T, h *host, addr, path string, interval time.Duration, maxRounds int64) (*stream, error) {
	c, err := dialFrom(h, netip.Addr{}, addr)
	if err != nil {
		return nil, err
	}
	s := &stream{c: c, r: bufio.NewReader(c), stop: make(chan struct{}), done: make(chan struct{})}
	s.round = func(s *stream, _ int64) (string, error) {
		if _, err := fmt.Fprintf(s.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
			return "", fmt.Errorf("write: %w", err)
		}
		resp, err := http.ReadResponse(s.r, nil)
		if err != nil {
			return "", fmt.Errorf("read: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("read body: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %q", resp.Status, body)
		}
		return parseAnswer(string(body)).server, nil
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if s.backend, err = s.round(s, 0); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: first request: %w", addr, err)
	}
	go s.run(interval, maxRounds)
	t.Cleanup(s.close)
	return s, nil
}

func (s *stream) run(interval time.Duration, maxRounds int64) {
	defer close(s.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := int64(0); i < maxRounds; i++ {
		// A fail-over may hold a packet back for a few retransmissions;
		// 10 s is far beyond that and far below anything a user waits.
		s.c.SetDeadline(time.Now().Add(10 * time.Second))
		who, err := s.round(s, i)
		if err != nil {
			s.err = fmt.Errorf("round %d: %w", i, err)
			return
		}
		if who != "" && who != s.backend {
			s.err = fmt.Errorf("round %d: answered by %s, want %s as before", i, who, s.backend)
			return
		}
		s.rounds.Add(1)
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
	s.err = fmt.Errorf("stopped after %d rounds, its maximum", maxRounds)
}

// failed returns the stream's error once it has stopped, nil while it
// runs.
func (s *stream) failed() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// reset reports whether err is the connection reset by its peer (a RST).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (s *stream) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.c.Close()
}

// streams is a set of streams from one client.
type streams []*stream

// openStreams opens n streams to addr from h.
func openStreams(t *testing.T, h *host, addr string, n int) streams {
	t.Helper()
	var ss streams
	for i := range n {
		s, err := openStream(t, h, netip.Addr{}, addr, 50*time.Millisecond, 6000)
		if err != nil {
			t.Fatalf("stream %d to %s: %v", i, addr, err)
		}
		ss = append(ss, s)
	}
	return ss
}

// byBackend counts the streams per real server.
func (ss streams) byBackend() map[string]int {
	m := map[string]int{}
	for _, s := range ss {
		m[s.backend]++
	}
	return m
}

// progress waits until every stream has made n more rounds than it had
// when progress was called, failing the test if any stream fails
// meanwhile.
func (ss streams) progress(t *testing.T, n int64, timeout time.Duration, what string) {
	t.Helper()
	base := make([]int64, len(ss))
	for i, s := range ss {
		base[i] = s.rounds.Load()
	}
	waitUntil(t, timeout, fmt.Sprintf("%d more rounds on each of %d streams (%s)", n, len(ss), what), func() (bool, string) {
		behind := 0
		for i, s := range ss {
			if err := s.failed(); err != nil {
				t.Fatalf("%s: stream %d (to %s) failed: %v; %s", what, i, s.backend, err, ss.summary())
			}
			if s.rounds.Load()-base[i] < n {
				behind++
			}
		}
		return behind == 0, fmt.Sprintf("%d streams behind", behind)
	})
}

// summary counts the streams that failed, and how.
func (ss streams) summary() string {
	resets, other := 0, 0
	var first error
	for _, s := range ss {
		if err := s.failed(); err != nil {
			if isReset(err) {
				resets++
			} else {
				other++
			}
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("%d streams: %d reset, %d failed otherwise (first: %v), per real server %v", len(ss), resets, other, first, ss.byBackend())
}

// xdpPassOnPort attaches a program that passes every frame (XDP_PASS) to
// h's port on the switch: a veth forwards XDP_TX and redirected frames of
// a native-mode program only when its peer has an XDP program too, as a
// real NIC's driver needs none. It stays attached until the test ends.
func (l *lab) xdpPassOnPort(h *host) {
	l.t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		l.t.Fatalf("loading an XDP_PASS program: %v", err)
	}
	l.t.Cleanup(func() { prog.Close() })
	var lk link.Link
	err = inNetns(l.sw, func() error {
		ifc, err := net.InterfaceByName(h.port)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		l.t.Fatalf("attaching XDP_PASS to %s: %v", h.port, err)
	}
	l.t.Cleanup(func() { lk.Close() })
}

// softwareChecksums makes every host of the lab send complete checksums,
// as a host behind a real NIC does: a veth hands an XDP program in native
// mode (the director's, or a real server's decapsulator) a packet whose
// checksum its sender left to the "hardware", and that packet is dropped
// further on. Call it once every host is on the switch.
func (l *lab) softwareChecksums() {
	l.t.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		l.t.Skip("skipping: native XDP on veth needs ethtool (Debian package ethtool) to turn off checksum offload")
	}
	l.mu.Lock()
	hosts := make([]*host, 0, len(l.hosts))
	for _, h := range l.hosts {
		hosts = append(hosts, h)
	}
	l.mu.Unlock()
	for _, h := range hosts {
		h.Run("ethtool", "-K", h.ifname, "tx", "off")
	}
}

// nativeXDP makes the lab carry a native-mode director's frames as real
// NICs do: complete checksums (softwareChecksums), and the directors'
// switch ports accepting XDP_TX and redirected frames (xdpPassOnPort).
// Call it once every host is on the switch.
func (l *lab) nativeXDP(directors ...*host) {
	l.t.Helper()
	l.softwareChecksums()
	for _, d := range directors {
		l.xdpPassOnPort(d)
	}
}

// waitServes requests url from h until every one of servers has answered
// (within timeout; the test fails after): a director starts forwarding to
// a real server once it has resolved the way to it, which may take a few
// hundred milliseconds after its health check passed. It returns how long
// that took.
//
// With persistence a client keeps its first server: sources, if given,
// are used in turn as the requests' source addresses.
func waitServes(t *testing.T, h *host, url string, servers []string, timeout time.Duration, sources ...netip.Addr) time.Duration {
	t.Helper()
	seen := map[string]bool{}
	var last error
	n := 0
	return waitUntil(t, timeout, fmt.Sprintf("answers from each of %v through %s", servers, url), func() (bool, string) {
		src := netip.Addr{}
		if len(sources) > 0 {
			src = sources[n%len(sources)]
		}
		n++
		body, err := get(h, src, url)
		if err != nil {
			last = err
		} else {
			seen[parseAnswer(body).server] = true
		}
		for _, s := range servers {
			if !seen[s] {
				return false, fmt.Sprintf("answered so far: %v; last error: %v", seen, last)
			}
		}
		return true, ""
	})
}

// waitRing waits until n's log says the last ring it wrote for service
// holds want backends: a director that starts resolves the way to each
// backend first, and until then a fail-over to it would pass that
// backend's flows to the kernel (which resets them). The status has no
// field for it.
func (n *lbNode) waitRing(service string, want int, timeout time.Duration) {
	n.h.lab.t.Helper()
	waitUntil(n.h.lab.t, timeout, fmt.Sprintf("%s's ring of %s with %d backends", n.h.name, service, want), func() (bool, string) {
		last := ""
		for line := range strings.Lines(n.p.out.String()) {
			if strings.Contains(line, `msg="ring rebuilt"`) && strings.Contains(line, " service="+service+" ") {
				last = line
			}
		}
		return strings.Contains(last, fmt.Sprintf(" backends=%d ", want)), strings.TrimSpace(last)
	})
}

// syncJoined waits until n's flow sync has received peer's whole table
// (asked for at start) and returns how long that took.
func (n *lbNode) syncJoined(peer netip.Addr, timeout time.Duration) time.Duration {
	n.h.lab.t.Helper()
	return waitUntil(n.h.lab.t, timeout, fmt.Sprintf("%s's flow sync to have %v's table", n.h.name, peer), func() (bool, string) {
		st, err := n.status()
		if err != nil {
			return false, err.Error()
		}
		if st.Director == nil || st.Director.Sync == nil {
			return false, "no flow sync in the status"
		}
		for _, p := range st.Director.Sync.Peers {
			if ap, err := netip.ParseAddrPort(p.Address); err == nil && ap.Addr() == peer && !p.Joined.IsZero() {
				return true, ""
			}
		}
		return false, fmt.Sprintf("peers %+v", st.Director.Sync.Peers)
	})
}
