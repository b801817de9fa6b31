package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

// webBackend is an HTTP server that can be stopped and started again on
// the same address, like a real server being restarted.
type webBackend struct {
	t    *testing.T
	name string
	addr string
	hits atomic.Int64
	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
}

func startWebBackend(t *testing.T, name string) *webBackend {
	w := &webBackend{t: t, name: name, addr: uniqueLoopback() + ":0"}
	w.start()
	t.Cleanup(w.stop)
	return w
}

func (w *webBackend) start() {
	w.t.Helper()
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		w.t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/ldirector.html", func(rw http.ResponseWriter, _ *http.Request) {
		io.WriteString(rw, "Test Page\n")
	})
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) {
		w.hits.Add(1)
		io.WriteString(rw, w.name)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	w.mu.Lock()
	w.srv, w.ln = srv, ln
	w.mu.Unlock()
	go srv.Serve(ln)
}

// stop shuts the server down: no new connections, requests in flight
// finish (a graceful "systemctl stop").
func (w *webBackend) stop() {
	w.mu.Lock()
	srv, ln := w.srv, w.ln
	w.srv = nil
	w.mu.Unlock()
	if srv == nil {
		return
	}
	// Closed here, not only by Shutdown: Serve may not have started yet,
	// and until it does Shutdown does not know the listener.
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

// load sends GET requests in a loop on fresh connections, as many
// browsers behind a balancer would, and records who answered.
type load struct {
	mu     sync.Mutex
	counts map[string]int
	errs   []error
	total  int
	stop   chan struct{}
	done   chan struct{}
}

func startLoad(url string, workers int) *load {
	l := &load{counts: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second) // bounded whatever happens
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := client.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				l.mu.Lock()
				l.total++
				if err != nil {
					l.errs = append(l.errs, err)
				} else {
					l.counts[string(body)]++
				}
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

// snapshot returns the counts so far and resets them.
func (l *load) take() (map[string]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, e := l.counts, l.errs
	l.counts, l.errs = map[string]int{}, nil
	return c, e
}

func (l *load) finish() {
	close(l.stop)
	<-l.done
}

func backendOf(st *admin.Status, addr string) admin.Backend {
	for _, s := range st.Services {
		for _, b := range s.Backends {
			if b.Address == addr {
				return b
			}
		}
	}
	return admin.Backend{}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The ldirectord tutorial: two web servers behind a tcp service, an HTTP
// check of /ldirector.html expecting "Test Page", a fallback server, and
// mon-style alert scripts.
func TestHealthFailoverSlowStartFallbackAlerts(t *testing.T) {
	t.Parallel()
	b1, b2 := startWebBackend(t, "b1"), startWebBackend(t, "b2")
	sorry := startWebBackend(t, "sorry")
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	script := filepath.Join(dir, "alert.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
echo "$FULCRUM_EVENT $FULCRUM_SERVICE $FULCRUM_BACKEND $FULCRUM_PREV_STATE>$FULCRUM_STATE $FULCRUM_NODE" >> `+events+"\n"), 0o755)
	listen := freeAddr(t, "tcp")
	n := startNode(t, fmt.Sprintf(`node: { name: lb1 }
admin: { listen: ADMIN }
services:
  - name: web
    listen: %s
    protocol: tcp
    scheduler: wrr
    health:
      type: http
      path: /ldirector.html
      expect_body: Test Page
      interval: 100ms
      timeout: 500ms
      rise: 2
      fall: 2
    slow_start: 3s
    fallback: %s
    backends:
      - { address: %s, weight: 10 }
      - { address: %s, weight: 10 }
alerts:
  - exec: [%s]
`, listen, sorry.addr, b1.addr, b2.addr, script))

	l := startLoad("http://"+listen+"/", 4)
	defer l.finish()
	time.Sleep(500 * time.Millisecond)
	if c, errs := l.take(); len(errs) > 0 || c["b1"] == 0 || c["b2"] == 0 {
		t.Fatalf("both up: got %v and errors %v, want both backends and no error", c, errs)
	}

	// Kill b1: after detection fulcrum does not even try it; retries hide
	// the refused connects before that.
	b1.stop()
	waitFor(t, "b1 down", 10*time.Second, func() bool { return !backendOf(n.status(), b1.addr).Healthy })
	fails := backendOf(n.status(), b1.addr).ConnectFailures
	l.take()
	time.Sleep(500 * time.Millisecond)
	c, errs := l.take()
	if len(errs) > 0 || c["b1"] > 0 || c["b2"] == 0 {
		t.Fatalf("b1 down: got %v and errors %v, want all on b2 and no error", c, errs)
	}
	if got := backendOf(n.status(), b1.addr).ConnectFailures; got != fails {
		t.Errorf("b1 connect failures grew from %d to %d after it was marked down, want no attempts", fails, got)
	}
	h := backendOf(n.status(), b1.addr).Health
	if h == nil || h.State != "down" || h.LastReason == "" || h.Flaps != 1 {
		t.Errorf("b1 health: got %+v, want down with a reason and 1 flap", h)
	}

	// Bring b1 back: traffic resumes, ramping up with slow start.
	b1.start()
	waitFor(t, "b1 up", 10*time.Second, func() bool { return backendOf(n.status(), b1.addr).Healthy })
	if !backendOf(n.status(), b1.addr).SlowStart {
		t.Errorf("b1 recovered: slow start not reported")
	}
	l.take()
	time.Sleep(700 * time.Millisecond)
	early, errs := l.take()
	waitFor(t, "slow start over", 10*time.Second, func() bool { return !backendOf(n.status(), b1.addr).SlowStart })
	_, errs1 := l.take() // the rest of the ramp
	errs = append(errs, errs1...)
	time.Sleep(700 * time.Millisecond)
	late, errs2 := l.take()
	if len(errs)+len(errs2) > 0 {
		t.Errorf("after recovery: errors %v %v", errs, errs2)
	}
	share := func(c map[string]int) float64 { return float64(c["b1"]) / float64(c["b1"]+c["b2"]) }
	if early["b1"] == 0 || share(early) > 0.35 || share(late) < 0.4 {
		t.Errorf("slow start: b1 share %.2f early (%v), %.2f late (%v); want some but under 0.35, then about 0.5", share(early), early, share(late), late)
	}

	// Kill both: the sorry server answers.
	b1.stop()
	b2.stop()
	waitFor(t, "both down", 10*time.Second, func() bool {
		st := n.status()
		return !backendOf(st, b1.addr).Healthy && !backendOf(st, b2.addr).Healthy
	})
	l.take()
	time.Sleep(300 * time.Millisecond)
	c, errs = l.take()
	if len(errs) > 0 || c["sorry"] == 0 || len(c) != 1 {
		t.Errorf("all down: got %v and errors %v, want only the fallback", c, errs)
	}

	// One alert per transition, with the right environment.
	want := []string{
		"backend web " + b1.addr + " up>down lb1",
		"backend web " + b1.addr + " down>up lb1",
	}
	waitFor(t, "alerts", 10*time.Second, func() bool {
		data, _ := os.ReadFile(events)
		return strings.Count(string(data), "\n") >= 4
	})
	data, _ := os.ReadFile(events)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("alert lines:\n%s\nwant 4, starting with\n%s", data, strings.Join(want, "\n"))
	}
	if hooks := n.status().Alerts.Hooks; len(hooks) != 1 || hooks[0].Sent != 4 || hooks[0].Failed != 0 {
		t.Errorf("status alert hooks: got %+v, want one hook with 4 sent", hooks)
	}
	for _, tail := range []string{"backend web " + b1.addr + " up>down lb1", "backend web " + b2.addr + " up>down lb1"} {
		if !strings.Contains(strings.Join(lines[2:], "\n"), tail) {
			t.Errorf("alert lines lack %q:\n%s", tail, data)
		}
	}
}

// Passive checks: a backend refusing connections is marked down by real
// traffic before the (slow) active check notices.
func TestPassiveHealth(t *testing.T) {
	t.Parallel()
	b1, b2 := startWebBackend(t, "b1"), startWebBackend(t, "b2")
	listen := freeAddr(t, "tcp")
	n := startNode(t, fmt.Sprintf(`admin: { listen: ADMIN }
services:
  - name: web
    listen: %s
    scheduler: rr
    health: { type: tcp, interval: 1h, passive: { failures: 3 } }
    backends: [ { address: %s }, { address: %s } ]
`, listen, b1.addr, b2.addr))
	b1.stop()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 20 {
		resp, err := client.Get("http://" + listen + "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
	b := backendOf(n.status(), b1.addr)
	if b.Healthy || b.ConnectFailures != 3 {
		t.Errorf("b1: got healthy %v after %d connect failures, want down after exactly 3", b.Healthy, b.ConnectFailures)
	}
	if b.Health == nil || !strings.Contains(b.Health.LastReason+" "+fmt.Sprint(b.Health), "passive") {
		t.Errorf("b1 health: got %+v, want a passive reason", b.Health)
	}
}
