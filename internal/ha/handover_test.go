package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// callLog records, in order, what the announcer and the rules were asked.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

type logAnnouncer struct{ log *callLog }

func (a logAnnouncer) Acquire(context.Context, []netip.Addr) error { a.log.add("acquire"); return nil }
func (a logAnnouncer) Release(context.Context, []netip.Addr) error { a.log.add("release"); return nil }
func (a logAnnouncer) Announce(context.Context, []netip.Addr) error {
	a.log.add("announce")
	return nil
}

type logHandover struct {
	log      *callLog
	quietErr error
}

func (h logHandover) Relay(_ context.Context, _ []netip.Addr, prev netip.Addr) error {
	h.log.add("relay to %v", prev)
	return nil
}
func (h logHandover) StopRelay(context.Context) error { h.log.add("stop relay"); return nil }
func (h logHandover) Quiet(context.Context, []netip.Addr) error {
	h.log.add("quiet")
	return h.quietErr
}
func (h logHandover) StopQuiet(context.Context) error { h.log.add("stop quiet"); return nil }

func newTestHandover(quietErr error) (*handoverAnnouncer, *callLog, *atomic.Bool, *sync.WaitGroup) {
	log := &callLog{}
	busy := &atomic.Bool{}
	holds := &sync.WaitGroup{}
	return &handoverAnnouncer{
		Announcer: logAnnouncer{log},
		ho:        logHandover{log: log, quietErr: quietErr},
		busy:      busy.Load,
		timeout:   10 * time.Second,
		release:   func(on bool) { log.add("keep-alive off %v", on) },
		log:       slog.New(slog.DiscardHandler),
		holds:     holds,
	}, log, busy, holds
}

var (
	hoVIPs = []netip.Addr{netip.MustParseAddr("10.0.0.100")}
	hoPeer = netip.MustParseAddr("10.0.0.2")
)

func expectCalls(t *testing.T, log *callLog, when string, want ...string) {
	t.Helper()
	if got := log.take(); !slices.Equal(got, want) {
		t.Errorf("%s: calls %q, want %q", when, got, want)
	}
}

func TestHandoverNewMasterRelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, log, _, _ := newTestHandover(nil)
		ctx := context.Background()
		a.AcquireFrom(ctx, hoVIPs, hoPeer)
		expectCalls(t, log, "taking over from a live master", "relay to 10.0.0.2", "acquire")
		time.Sleep(a.timeout - time.Millisecond)
		expectCalls(t, log, "within the timeout")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		expectCalls(t, log, "at the timeout", "stop relay")

		a.AcquireFrom(ctx, hoVIPs, hoPeer)
		log.take()
		a.Release(ctx, hoVIPs)
		expectCalls(t, log, "leaving master while relaying", "stop relay", "release")
		time.Sleep(a.timeout)
		synctest.Wait()
		expectCalls(t, log, "after the timeout of a stopped relay")

		a.Acquire(ctx, hoVIPs)
		expectCalls(t, log, "a plain take-over (the master died)", "acquire")
	})
}

func TestHandoverOldMasterHolds(t *testing.T) {
	ctx := context.Background()
	t.Run("until its connections are done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, log, busy, holds := newTestHandover(nil)
			busy.Store(true)
			a.ReleaseTo(ctx, hoVIPs, hoPeer)
			expectCalls(t, log, "hand-over with connections in flight", "quiet", "keep-alive off true")
			time.Sleep(time.Second)
			expectCalls(t, log, "while they last")
			busy.Store(false)
			time.Sleep(handoverPoll)
			synctest.Wait()
			expectCalls(t, log, "once they are done", "keep-alive off false", "release", "stop quiet")
			holds.Wait()
		})
	})
	t.Run("at most the timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, log, busy, holds := newTestHandover(nil)
			busy.Store(true)
			start := time.Now()
			a.ReleaseTo(ctx, hoVIPs, hoPeer)
			holds.Wait()
			if d := time.Since(start); d != a.timeout {
				t.Errorf("held %v, want the timeout %v", d, a.timeout)
			}
			expectCalls(t, log, "connections that never end", "quiet", "keep-alive off true", "keep-alive off false", "release", "stop quiet")
		})
	})
	t.Run("master again meanwhile", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, log, busy, holds := newTestHandover(nil)
			busy.Store(true)
			a.ReleaseTo(ctx, hoVIPs, hoPeer)
			time.Sleep(time.Second)
			a.Acquire(ctx, hoVIPs)
			holds.Wait()
			expectCalls(t, log, "a hold cut short by taking over again", "quiet", "keep-alive off true", "keep-alive off false", "stop quiet", "acquire")
		})
	})
	t.Run("nothing in flight", func(t *testing.T) {
		a, log, _, _ := newTestHandover(nil)
		a.ReleaseTo(ctx, hoVIPs, hoPeer)
		expectCalls(t, log, "an idle hand-over", "release")
	})
	t.Run("cannot keep quiet", func(t *testing.T) {
		a, log, busy, _ := newTestHandover(errors.New("nft not found"))
		busy.Store(true)
		a.ReleaseTo(ctx, hoVIPs, hoPeer)
		expectCalls(t, log, "no nft", "quiet", "release")
	})
	t.Run("disabled", func(t *testing.T) {
		a, log, busy, _ := newTestHandover(nil)
		a.timeout = 0
		busy.Store(true)
		a.ReleaseTo(ctx, hoVIPs, hoPeer)
		a.AcquireFrom(ctx, hoVIPs, hoPeer)
		expectCalls(t, log, "handover_timeout 0", "release", "acquire")
	})
}
