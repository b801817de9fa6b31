package e2e

import (
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpConfig renders a config with one TCP service over backends.
func tcpConfig(listen, scheduler, extra string, backends []*tcpBackend, weights []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: { listen: ADMIN }\nshutdown: { drain_timeout: 3s }\nservices:\n  - name: web\n    listen: %s\n    protocol: tcp\n    scheduler: %s\n%s    backends:\n", listen, scheduler, extra)
	for i, be := range backends {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		fmt.Fprintf(&b, "      - { address: %s, weight: %d }\n", be.addr, w)
	}
	return b.String()
}

func startBackends(t *testing.T, n int) []*tcpBackend {
	bs := make([]*tcpBackend, n)
	for i := range bs {
		bs[i] = startTCPBackend(t, fmt.Sprintf("b%d", i))
	}
	return bs
}

func TestSchedulerDistribution(t *testing.T) {
	t.Parallel()
	const conns = 120
	tests := []struct {
		scheduler string
		weights   []int
		// want is each backend's expected share; nil means "all on one
		// backend" (hashing a single client or destination).
		want []float64
		tol  float64
	}{
		{scheduler: "rr", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.02},
		{scheduler: "wrr", weights: []int{1, 2, 3}, want: []float64{1. / 6, 2. / 6, 3. / 6}, tol: 0.02},
		{scheduler: "wrr", weights: []int{1, 0, 3}, want: []float64{0.25, 0, 0.75}, tol: 0.02},
		{scheduler: "lc", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.2},
		{scheduler: "wlc", weights: []int{1, 1, 1}, want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.2},
		{scheduler: "sed", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.2},
		{scheduler: "nq", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.2},
		{scheduler: "random", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.2},
		{scheduler: "p2c", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.25},
		{scheduler: "sh"},
		{scheduler: "dh"},
		{scheduler: "maglev"},
		{scheduler: "mh"},
		{scheduler: "twos", want: []float64{1. / 3, 1. / 3, 1. / 3}, tol: 0.25},
		{scheduler: "fo", weights: []int{1, 3, 2}, want: []float64{0, 1, 0}},
		// One connection at a time never exceeds weight 50: no overflow.
		{scheduler: "ovf", weights: []int{1, 50, 2}, want: []float64{0, 1, 0}},
		// Locality schedulers move a destination off a server whose active
		// connections exceed its weight; weight 10 keeps it below that.
		{scheduler: "lblc", weights: []int{10, 10, 10}},
		{scheduler: "lblcr", weights: []int{10, 10, 10}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.scheduler, tc.weights), func(t *testing.T) {
			t.Parallel()
			bs := startBackends(t, 3)
			listen := freeAddr(t, "tcp")
			startNode(t, tcpConfig(listen, tc.scheduler, "", bs, tc.weights))
			counts := map[string]int{}
			for i := range conns {
				name, err := ask(listen)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				counts[name]++
			}
			if tc.want == nil {
				if len(counts) != 1 {
					t.Fatalf("got %v, want every connection of one client on one backend", counts)
				}
				return
			}
			for i, share := range tc.want {
				got := float64(counts[bs[i].name]) / conns
				if math.Abs(got-share) > tc.tol {
					t.Errorf("backend %d: got share %.3f, want %.3f ± %.2f (counts %v)", i, got, share, tc.tol, counts)
				}
			}
		})
	}
}

func TestPersistenceEndToEnd(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 3)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "rr", "    persistence: { timeout: 300s, netmask: 32 }\n", bs, nil))
	byClient := map[string]map[string]int{}
	for i := range 60 {
		src := fmt.Sprintf("127.0.0.%d", 2+i%3)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		name, err := askOn(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if byClient[src] == nil {
			byClient[src] = map[string]int{}
		}
		byClient[src][name]++
	}
	used := map[string]bool{}
	for src, counts := range byClient {
		if len(counts) != 1 {
			t.Errorf("client %s: got backends %v, want one", src, counts)
		}
		for name := range counts {
			used[name] = true
		}
	}
	// Three clients under rr land on three different backends.
	if len(used) != 3 {
		t.Errorf("got backends %v in use, want 3 (one per client)", used)
	}
	if p := n.service("web").Persistence; p == nil || p.Entries != 3 {
		t.Errorf("status persistence: got %+v, want 3 entries", p)
	}
}

func TestKilledBackendRetried(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 3)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "rr", "", bs, nil))
	bs[1].kill()
	for i := range 90 {
		name, err := ask(listen)
		if err != nil {
			t.Fatalf("connection %d: %v (a dead backend must be retried elsewhere)", i, err)
		}
		if name == "b1" {
			t.Fatalf("connection %d answered by the killed backend", i)
		}
	}
	var fails uint64
	for _, b := range n.service("web").Backends {
		if b.Address == bs[1].addr {
			fails = b.ConnectFailures
		}
	}
	if fails == 0 {
		t.Errorf("killed backend: got 0 connect failures, want > 0")
	}
}

func TestAllBackendsDownClosesClient(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 2)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "rr", "", bs, nil))
	for _, b := range bs {
		b.kill()
	}
	start := time.Now()
	if _, err := ask(listen); err == nil {
		t.Fatal("all backends dead: got an answer")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("client closed after %v, want promptly", d)
	}
	// And the process is still fine.
	if n.service("web").Counters.Accepted == 0 {
		t.Errorf("status: got 0 accepted, want the failed connection counted")
	}
}

func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 4)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "wrr", "", bs[:2], nil))

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(20 * time.Second) // bound even if stop never comes
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				// One long-lived connection asked twice, across a reload.
				c, err := net.DialTimeout("tcp", listen, 5*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					_, err = askOn(c)
					if err == nil {
						time.Sleep(5 * time.Millisecond)
						_, err = askOn(c)
					}
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	configs := []string{
		tcpConfig(listen, "wrr", "", bs[:3], []int{1, 2, 3}),
		tcpConfig(listen, "wlc", "", bs[1:4], nil),
		tcpConfig(listen, "rr", "", bs[2:4], nil),
		"services: [ { name: web, listen: " + listen + ", backends: [ { address: nonsense } ] } ]\n", // rejected
		tcpConfig(listen, "wrr", "", bs[:2], nil),
	}
	for i, cfg := range configs {
		time.Sleep(300 * time.Millisecond)
		r := n.reload(cfg)
		wantFailed := uint64(0)
		if i >= 3 {
			wantFailed = 1
		}
		if r.Failed != wantFailed {
			t.Errorf("reload %d: got %d failed reloads (%s), want %d", i, r.Failed, r.LastError, wantFailed)
		}
		if i == 3 && !strings.Contains(r.LastError, "backends[0].address") {
			t.Errorf("rejected reload: error %q does not name the bad field", r.LastError)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Fatalf("got %d ok, %d failed connections across reloads (first error: %v), want 0 failed", ok.Load(), failed.Load(), firstErr.Load())
	}
	st := n.status()
	if st.Reloads.OK != 4 || st.Reloads.Failed != 1 {
		t.Errorf("status reloads: got %+v, want 4 ok 1 failed", st.Reloads)
	}
	if got := len(n.service("web").Backends); got != 2 {
		t.Errorf("backends after reloads: got %d, want 2", got)
	}
}

func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 1)
	listen := freeAddr(t, "tcp")
	n := startNode(t, tcpConfig(listen, "rr", "", bs, nil))

	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := askOn(c); err != nil {
		t.Fatal(err)
	}
	n.signal(syscall.SIGTERM)
	// New connections are refused once the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting 5s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The established connection still works while draining.
	if _, err := askOn(c); err != nil {
		t.Fatalf("established connection after SIGTERM: %v", err)
	}
	c.Close()
	if err := n.waitExit(5 * time.Second); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}

func TestSIGTERMDrainTimeout(t *testing.T) {
	t.Parallel()
	bs := startBackends(t, 1)
	listen := freeAddr(t, "tcp")
	cfg := strings.Replace(tcpConfig(listen, "rr", "", bs, nil), "drain_timeout: 3s", "drain_timeout: 1s", 1)
	n := startNode(t, cfg)
	c, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := askOn(c); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.signal(syscall.SIGTERM)
	if err := n.waitExit(10 * time.Second); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("exited after %v with a connection open, want after the 1s drain timeout", d)
	}
	// The held connection was closed by the forced stop.
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err == nil {
		t.Errorf("held connection still open after the drain timeout")
	}
}
