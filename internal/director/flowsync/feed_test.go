package flowsync

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyEvents is a new-flow feed whose first fails reads fail at once;
// the later ones feed from next.
type flakyEvents struct {
	fails int
	next  fakeEvents
	// release, when set, holds the first read until it is closed.
	release chan struct{}

	mu    sync.Mutex
	calls []time.Time
	// called hears the number of each read as it starts.
	called chan int
}

func newFlakyEvents(fails int) *flakyEvents {
	return &flakyEvents{fails: fails, next: make(fakeEvents), called: make(chan int, 64)}
}

func (e *flakyEvents) ReadNewFlows(ctx context.Context, fn func(NewFlow)) error {
	e.mu.Lock()
	e.calls = append(e.calls, time.Now())
	n := len(e.calls)
	e.mu.Unlock()
	e.called <- n
	if n == 1 && e.release != nil {
		<-e.release
	}
	if n <= e.fails {
		return fmt.Errorf("ringbuf: read #%d: bad file descriptor", n)
	}
	return e.next.ReadNewFlows(ctx, fn)
}

// waitCall waits for read number n to start.
func (e *flakyEvents) waitCall(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-e.called:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for read #%d of the feed", n)
		}
	}
}

// TestFeedRestarts: a feed that fails once is read again after
// FeedRetry, its failure in the status, and the flows it then feeds
// reach the peer.
func TestFeedRestarts(t *testing.T) {
	t.Parallel()
	ev := newFlakyEvents(1)
	a, b := pair(t, func(o *Options) { o.Events, o.FeedRetry = ev, 10*time.Millisecond }, nil)
	ev.waitCall(t, 2)
	st := a.s.Status().Feed
	if st.State != FeedRunning || st.Failures != 1 || st.LastError != "new flows: ringbuf: read #1: bad file descriptor" || st.LastFailure.IsZero() {
		t.Errorf("feed status after a restart: got %+v, want running after 1 failure with its error", st)
	}
	f := flow("10.1.2.3:40000", 80, 6)
	ev.next <- NewFlow{Flow: f, Slot: 12, Service: 1, Persisted: true}
	waitTable(t, b.table, "lb2's copy of the flow fed after the restart", func() bool { return b.table.flowSlots()[f] == 22 })
}

// TestFeedRestarting: while the feed waits to be read again the status
// says so and when; the wait ends with Run.
func TestFeedRestarting(t *testing.T) {
	t.Parallel()
	ev := newFlakyEvents(1)
	before := time.Now()
	a := start(t, "lb1", listen(t, "127.0.0.1"), 10, 7, func(o *Options) { o.Events, o.FeedRetry = ev, time.Hour })
	ev.waitCall(t, 1)
	st := waitStatus(t, a.s, "the feed restarting", func(s Status) bool { return s.Feed.State == FeedRestarting })
	if f := st.Feed; f.Failures != 1 || !strings.Contains(f.LastError, "bad file descriptor") || f.RetryAt.Before(before.Add(time.Hour)) {
		t.Errorf("feed status: got %+v, want 1 failure, its error, a retry in an hour", f)
	}
}

// TestFeedBackoff: failures in a row are read again after FeedRetry,
// doubling up to FeedRetryMax.
func TestFeedBackoff(t *testing.T) {
	t.Parallel()
	ev := newFlakyEvents(5)
	const first, most = 20 * time.Millisecond, 80 * time.Millisecond
	a := start(t, "lb1", listen(t, "127.0.0.1"), 10, 7, func(o *Options) { o.Events, o.FeedRetry, o.FeedRetryMax = ev, first, most })
	ev.waitCall(t, 6)
	ev.mu.Lock()
	calls := ev.calls
	ev.mu.Unlock()
	for i, want := range []time.Duration{first, 2 * first, most, most, most} {
		if got := calls[i+1].Sub(calls[i]); got < want {
			t.Errorf("wait before read #%d: got %v, want at least %v", i+2, got, want)
		}
	}
	if f := a.s.Status().Feed; f.Failures != 5 || f.State != FeedRunning {
		t.Errorf("feed status: got %+v, want running after 5 failures", f)
	}
}

// TestFeedRestartScans: when the feed is read again after a failure, the
// whole table is scanned at once, so a flow created while it was down
// that the ring does not pick reaches the peers before the periodic scan.
func TestFeedRestartScans(t *testing.T) {
	t.Parallel()
	ev := newFlakyEvents(1)
	ev.release = make(chan struct{})
	peer := listen(t, "127.0.0.1")
	a := start(t, "lb1", listen(t, "127.0.0.1"), 10, 7, func(o *Options) {
		o.Events, o.FeedRetry, o.Refresh = ev, 10*time.Millisecond, time.Hour
	}, addrOf(peer))
	ev.waitCall(t, 1)
	f := flow("10.1.2.3:40000", 80, 6)
	a.table.InsertFlow(f, 12) // persisted to b3 while the feed is down
	a.res.setPick(f, 10)      // the ring would send it to b1
	close(ev.release)
	ev.waitCall(t, 2)
	buf := make([]byte, MaxLen+1)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no flow entry for %v reached the peer: %v", f, err)
		}
		d, err := Parse(buf[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range d.Entries {
			if e.Kind == KindFlow && e.Client == f.Src && e.VIP == f.Dst && e.Backend == backends[2] {
				return
			}
		}
	}
}
