package proxy

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/l7/poller"
	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// TestPollerCannotStart: when the poller cannot start (no epoll) the
// proxy says so in its log and its stats, and serves through Go's
// netpoller.
func TestPollerCannotStart(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	var logs syncbuf.Buffer
	ps := &pollers{start: func(*slog.Logger) (*poller.Poller, error) {
		return nil, errors.New("poller: epoll_create1: function not implemented")
	}}
	p := newProxy(&Config{Name: "web", Default: svc, Log: slog.New(slog.NewTextHandler(&logs, nil))}, ps)
	addr := serveProxy(t, p)
	c := dial(t, addr)
	for range 3 {
		if resp, body := c.roundTrip(get("/")); resp.StatusCode != 200 || body != "x" {
			t.Fatalf("got %d %q, want 200 x", resp.StatusCode, body)
		}
	}
	st := p.Stats()
	if st.Poller != PollerFailed || !strings.Contains(st.PollerError, "not implemented") {
		t.Errorf("stats: got poller %v %q, want failed with the reason", st.Poller, st.PollerError)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "HTTP poller cannot run") || !strings.Contains(got, "not implemented") {
		t.Errorf("log: got %q, want a WARN line with the reason", got)
	}
}

// TestPollerSwitch: Config.NoPoller turns the poller off, Update turns it
// back on, and the proxies sharing a poller close it with the last one.
func TestPollerSwitch(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the poller needs epoll")
	}
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	ps := &pollers{start: poller.Start}
	p1 := newProxy(&Config{Name: "a", Default: svc, Log: testLogger(t), NoPoller: true}, ps)
	p2 := newProxy(&Config{Name: "b", Default: svc, Log: testLogger(t)}, ps)
	a1, a2 := serveProxy(t, p1), serveProxy(t, p2)
	if st := p1.Stats().Poller; st != PollerOff {
		t.Errorf("NoPoller: got %v, want off", st)
	}
	if st := p2.Stats().Poller; st != PollerOn {
		t.Errorf("default: got %v, want on", st)
	}
	// Requests on both; p2's sockets are on the poller, p1's are not.
	c1, c2 := dial(t, a1), dial(t, a2)
	c1.roundTrip(get("/"))
	c2.roundTrip(get("/"))
	pl := p2.poller.Load()
	if n := pl.Stats().Sockets; n != 2 {
		t.Errorf("sockets on the poller: got %d, want 2 (p2's client and backend connections)", n)
	}
	p1.Update(&Config{Name: "a", Default: svc, Log: testLogger(t)})
	if st := p1.Stats().Poller; st != PollerOn || p1.poller.Load() != pl {
		t.Errorf("after Update: got %v, want on, sharing p2's poller", st)
	}
	// The connection opened before keeps Go's netpoller; a new one uses
	// the poller.
	c1.roundTrip(get("/"))
	dial(t, a1).roundTrip(get("/"))
	for _, p := range []*Proxy{p1, p2} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		p.Shutdown(ctx)
		cancel()
	}
	if err := pl.Err(); !errors.Is(err, poller.ErrClosed) {
		t.Errorf("after both shut down: poller Err %v, want closed", err)
	}
}

// TestPollerEnv: FULCRUM_HTTP_POLLER=off turns the poller off.
func TestPollerEnv(t *testing.T) {
	t.Setenv(PollerEnv, "off")
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	if resp, _ := dial(t, addr).roundTrip(get("/")); resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}
	if st := p.Stats().Poller; st != PollerOff {
		t.Errorf("got %v, want off", st)
	}
}
