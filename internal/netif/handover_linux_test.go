package netif

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// handoverLab is a client and two balancers, old (A) and new (B), on a
// bridge in a namespace of its own; the VIP is on A, and both serve it.
type handoverLab struct {
	ns      map[string]string // role → namespace: sw, a, b, c
	macB    string
	vip     netip.Addr
	created []string
}

func newHandoverLab(t *testing.T) *handoverLab {
	t.Helper()
	netns.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: needs nft (nftables)")
	}
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	l := &handoverLab{ns: map[string]string{}, vip: netip.MustParseAddr("10.78.0.100")}
	for _, role := range []string{"sw", "a", "b", "c"} {
		name := fmt.Sprintf("fulcrum-ho-%08x-%d-%s", h.Sum32(), os.Getpid(), role)
		netns.Add(t, name)
		l.ns[role] = name
	}
	netns.IP(t, "-n", l.ns["sw"], "link", "add", "br0", "type", "bridge")
	netns.IP(t, "-n", l.ns["sw"], "link", "set", "br0", "up")
	for i, role := range []string{"a", "b", "c"} {
		port := "p" + role
		netns.IP(t, "-n", l.ns["sw"], "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", l.ns[role])
		netns.IP(t, "-n", l.ns["sw"], "link", "set", port, "master", "br0", "up")
		netns.IP(t, "-n", l.ns[role], "link", "set", "lo", "up")
		netns.IP(t, "-n", l.ns[role], "addr", "add", fmt.Sprintf("10.78.0.%d/24", []int{2, 3, 10}[i]), "dev", "eth0")
		netns.IP(t, "-n", l.ns[role], "link", "set", "eth0", "up")
	}
	for _, role := range []string{"a", "b", "c"} {
		netns.WaitUp(t, l.ns[role], "eth0")
	}
	out := netns.IP(t, "-n", l.ns["b"], "-o", "link", "show", "dev", "eth0")
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "link/ether" {
			l.macB = f[i+1]
		}
	}
	netns.IP(t, "-n", l.ns["a"], "addr", "add", l.vip.String()+"/24", "dev", "eth0")
	l.serve(t, "a")
	l.serve(t, "b")
	return l
}

// serve runs a line server on the VIP in role's namespace that answers
// each line with the role's name, so the client sees who answered.
func (l *handoverLab) serve(t *testing.T, role string) {
	t.Helper()
	var ln net.Listener
	err := inNetns(l.ns[role], func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) })
			return serr
		}}
		ln, err = lc.Listen(context.Background(), "tcp4", netip.AddrPortFrom(l.vip, 80).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", role, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s:%s\n", role, sc.Text())
				}
			}()
		}
	}()
}

// dial connects the client to the VIP.
func (l *handoverLab) dial(t *testing.T) net.Conn {
	t.Helper()
	var c net.Conn
	err := inNetns(l.ns["c"], func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(l.vip, 80).String(), 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends a line on c and returns the answer, or the error.
func ask(c net.Conn, line string) (string, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(s), err
}

func (l *handoverLab) handover(t *testing.T, role string) *Handover {
	t.Helper()
	h := NewHandover("eth0", 51)
	t.Cleanup(func() {
		inNetns(l.ns[role], func() error {
			h.StopRelay(context.Background())
			return h.StopQuiet(context.Background())
		})
	})
	return h
}

// TestRelayKeepsConnections: after the client's neighbour entry moves to
// B, a connection A still serves goes on through B's relay, B's own new
// connections stay on B, and without the relay the connection is reset.
func TestRelayKeepsConnections(t *testing.T) {
	l := newHandoverLab(t)
	c := l.dial(t)
	if got, err := ask(c, "one"); got != "a:one" {
		t.Fatalf("before the hand-over: %q, %v; want a:one", got, err)
	}
	// B takes over: the VIP, the relay, and the client's move to B's MAC
	// (what B's gratuitous ARP does).
	netns.IP(t, "-n", l.ns["b"], "addr", "add", l.vip.String()+"/24", "dev", "eth0")
	h := l.handover(t, "b")
	if err := inNetns(l.ns["b"], func() error {
		return h.Relay(context.Background(), []netip.Addr{l.vip}, netip.MustParseAddr("10.78.0.2"))
	}); err != nil {
		t.Fatalf("Relay: %v", err)
	}
	netns.IP(t, "-n", l.ns["c"], "neigh", "replace", l.vip.String(), "lladdr", l.macB, "dev", "eth0")
	for i := range 5 {
		line := fmt.Sprintf("two-%d", i)
		if got, err := ask(c, line); got != "a:"+line {
			t.Fatalf("the old connection after the move: %q, %v; want a:%s (relayed to A)", got, err, line)
		}
	}
	if got, err := ask(l.dial(t), "new"); got != "b:new" {
		t.Fatalf("a new connection after the move: %q, %v; want b:new", got, err)
	}
	if err := inNetns(l.ns["b"], func() error { return h.StopRelay(context.Background()) }); err != nil {
		t.Fatalf("StopRelay: %v", err)
	}
	if got, err := ask(c, "three"); err == nil {
		t.Fatalf("without the relay the old connection still answered %q; want a reset from B", got)
	}
}

// TestQuietKeepsNeighboursAway: A holds the VIP but, quiet, does not
// answer a client that resolves it; once A is no longer quiet, it does.
func TestQuietKeepsNeighboursAway(t *testing.T) {
	l := newHandoverLab(t)
	h := l.handover(t, "a")
	if err := inNetns(l.ns["a"], func() error {
		return h.Quiet(context.Background(), []netip.Addr{l.vip})
	}); err != nil {
		t.Fatalf("Quiet: %v", err)
	}
	exec.Command("ip", "-n", l.ns["c"], "neigh", "flush", "dev", "eth0").Run()
	err := inNetns(l.ns["c"], func() error {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(l.vip, 80).String(), 1500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("a quiet node's VIP was resolved and answered")
	}
	// Removing the rules twice is fine (a group's start clears leftovers).
	for range 2 {
		if err := inNetns(l.ns["a"], func() error { return h.StopQuiet(context.Background()) }); err != nil {
			t.Fatalf("StopQuiet: %v", err)
		}
	}
	exec.Command("ip", "-n", l.ns["c"], "neigh", "flush", "dev", "eth0").Run()
	if got, err := ask(l.dial(t), "loud"); got != "a:loud" {
		t.Fatalf("after StopQuiet: %q, %v; want a:loud", got, err)
	}
}
