package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// TestFlowSyncKernel runs two daemons with real kernel directors (each
// its own XDP program, attached in generic mode to one end of a veth
// pair of the test's own; the backends' neighbour entries are static, so
// the rings are real) and the flow sync between them over loopback UDP:
//   - a flow node A's kernel table pins away from its ring's pick is in
//     node B's kernel table, under B's slot of the same backend, once B
//     started and joined (A's dump);
//   - another such flow, added on A later, reaches B when a reload of A
//     rebuilds the service's ring (the director's ring hook, not the
//     refresh scan minutes later).
func TestFlowSyncKernel(t *testing.T) {
	needKernelDirector(t)
	t.Parallel()
	ifname := newVeth(t, "fsk")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	net3 := fmt.Sprintf("10.%d.%d", 100+rand.IntN(100), rand.IntN(250))
	ip("addr", "add", net3+".1/24", "dev", ifname)
	ip("link", "set", ifname, "up")
	ip("link", "set", ifname+"p", "up")
	backends := []string{net3 + ".2", net3 + ".3", net3 + ".4"}
	for i, b := range backends {
		ip("neigh", "replace", b, "lladdr", fmt.Sprintf("02:00:00:00:00:%02x", i+2), "dev", ifname, "nud", "permanent")
	}
	syncA, syncB := freeport.UDP(t), freeport.UDP(t)
	cfg := func(node, iface, listen, peer string, n int) string {
		y := fmt.Sprintf(`node: { name: %s }
admin: { listen: %q }
director:
  interfaces: [%s]
  xdp_mode: generic
  flow_table_size: 4096
  sync: { listen: %q, peers: [%q] }
services:
  - name: web
    listen: 192.0.2.77:80
    forwarding: direct
    scheduler: maglev
    backends:
`, node, freeTCP(t), iface, listen, peer)
		for _, b := range backends[:n] {
			y += fmt.Sprintf("      - { address: %s }\n", b)
		}
		return y
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := startDaemonOpts(t, cfg("lb1", ifname, syncA, syncB, 2), Options{Log: log})
	dirA := kernelOf(t, a)
	progA := dirA.d.Program()

	// A flow A's ring does not pick: a connection persistence (or an
	// older ring) pinned elsewhere.
	moved := func(port uint16) (flowsync.Flow, netip.Addr) {
		t.Helper()
		f := flowsync.Flow{Src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), port), Dst: netip.MustParseAddrPort("192.0.2.77:80"), Proto: 6}
		id, _, ok := dirA.d.Service(f)
		if !ok {
			t.Fatal("node A has no service for the flow")
		}
		var pick uint32
		waitUntil(t, "node A's ring filled", func() bool {
			pick, ok = dirA.d.Pick(id, f)
			return ok
		})
		picked, _ := dirA.d.Backend(pick)
		other := netip.MustParseAddr(backends[0])
		if picked == other {
			other = netip.MustParseAddr(backends[1])
		}
		slot, ok := dirA.d.Slot(id, other)
		if !ok {
			t.Fatalf("node A has no slot for %s", other)
		}
		if err := progA.InsertFlow(f, slot); err != nil {
			t.Fatal(err)
		}
		return f, other
	}
	f1, to1 := moved(40001)

	b := startDaemonOpts(t, cfg("lb2", ifname+"p", syncB, syncA, 2), Options{Log: log})
	dirB := kernelOf(t, b)
	inB := func(f flowsync.Flow, backend netip.Addr) func() bool {
		return func() bool {
			var got uint32
			found := false
			dirB.d.Program().Flows(func(g flowsync.Flow, slot uint32, _ time.Duration) bool {
				if g == f {
					got, found = slot, true
					return false
				}
				return true
			})
			if !found {
				return false
			}
			id, _, _ := dirB.d.Service(f)
			want, ok := dirB.d.Slot(id, backend)
			if !ok || got != want {
				t.Fatalf("node B has the flow on slot %d, want its slot %d of %s", got, want, backend)
			}
			return true
		}
	}
	waitUntil(t, "node A's moved flow in node B's kernel table (the join's dump)", inB(f1, to1))
	waitUntil(t, "node B joined", func() bool {
		st := b.d.Status().Director.Sync
		return st != nil && len(st.Peers) == 1 && !st.Peers[0].Joined.IsZero()
	})

	// A ring change on A: the scan it triggers sends the flow.
	f2, to2 := moved(40002)
	if err := a.reload(cfg("lb1", ifname, syncA, syncB, 3)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the flow moved before A's ring change in node B's kernel table", inB(f2, to2))
	st := a.d.Status().Director.Sync
	if st == nil || st.Sent < 2 || st.Dumps < 1 {
		t.Errorf("node A's sync status: got %+v, want 2 entries sent at least, one dump", st)
	}
	if stB := b.d.Status().Director.Sync; stB == nil || stB.Installed < 2 || len(stB.Dropped) != 0 {
		t.Errorf("node B's sync status: got %+v, want 2 entries installed, no drops", stB)
	}
}

// needKernelDirector skips t unless this host can run the real kernel
// director: root, iproute2, a kernel with what xdp needs.
func needKernelDirector(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: XDP")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	if err := xdp.Supported(); err != nil {
		t.Skipf("the kernel cannot run the director: %v", err)
	}
}

// newVeth adds a veth pair of a name unique to the test, NAME and
// NAMEp, deleted when the test ends; it returns NAME.
func newVeth(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d%03x", prefix, os.Getpid()%100000, rand.IntN(1<<12))
	if out, err := exec.Command("ip", "link", "add", name, "type", "veth", "peer", "name", name+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
	return name
}

// kernelOf is td's real kernel director.
func kernelOf(t *testing.T, td *testDaemon) kernelDirector {
	t.Helper()
	snap := td.d.snap.Load()
	if snap == nil || snap.director == nil {
		t.Fatal("the daemon has no kernel director")
	}
	dir := snap.director
	if c, ok := dir.(*closableDirector); ok {
		dir = c.KernelDirector
	}
	kd, ok := dir.(kernelDirector)
	if !ok {
		t.Fatalf("the daemon's director is a %T, want the real one", dir)
	}
	return kd
}
