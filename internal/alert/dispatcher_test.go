package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// logBuffer collects log output from every goroutine of a dispatcher.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines with msg.
func (b *logBuffer) lines(msg string) []string {
	var out []string
	for line := range strings.Lines(b.String()) {
		if strings.Contains(line, "msg="+msg+" ") || strings.Contains(line, `msg="`+msg+`"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func newDispatcher(t *testing.T, hooks ...Hook) (*Dispatcher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dispatcher log:\n%s", logs)
		}
	})
	return NewDispatcher(log, hooks), logs
}

// start runs d until the test ends; stop ends it early and returns Run's
// error.
func start(t *testing.T, d *Dispatcher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitFor polls cond: deliveries are real processes and sockets, so
// there is nothing to wait on but their effect.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statsOf(d *Dispatcher, name string) HookStats {
	for _, s := range d.Stats() {
		if s.Name == name {
			return s
		}
	}
	return HookStats{}
}

// settled waits until every event given to hook name is accounted for.
func settled(t *testing.T, d *Dispatcher, name string, events uint64) HookStats {
	t.Helper()
	var s HookStats
	waitFor(t, fmt.Sprintf("%d events through hook %s", events, name), func() bool {
		s = statsOf(d, name)
		return s.Sent+s.Failed+s.Dropped+s.Overflow >= events
	})
	return s
}

// script writes a shell script and returns the argv that runs it. The
// argv runs sh rather than the script: executing a file just written
// fails with "text file busy" when another test forks while the file is
// open for writing (golang.org/issue/22315).
func script(t *testing.T, body string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", path}
}

// recorder is a webhook receiver that keeps what it got.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var ev Event
	if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) got() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func newRecorder(t *testing.T) (*recorder, string) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func backendEvent(service, backend, state string) Event {
	prev := map[string]string{"up": "down", "down": "up"}[state]
	return Event{Kind: "backend", Service: service, Backend: backend, State: state, PrevState: prev,
		Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		d, logs := newDispatcher(t, Hook{Name: "pager", Exec: []string{"true"}, MaxPerMinute: 3})
		stop := start(t, d)
		for range 10 {
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		}
		synctest.Wait()
		s := statsOf(d, "pager")
		if s.Sent != 3 || s.Dropped != 7 || s.Failed != 0 {
			t.Errorf("10 events at once: got sent %d, dropped %d, failed %d; want 3, 7, 0", s.Sent, s.Dropped, s.Failed)
		}
		if got := logs.lines("event"); len(got) != 10 || !strings.Contains(got[0], "level=DEBUG") {
			t.Errorf("got %d events logged (first %q), want 10 at debug: the notifier logs the change", len(got), got)
		}
		if got := logs.lines("alert hook dropping events; further drops are summed up each minute"); len(got) != 1 || !strings.Contains(got[0], "why=\"rate limit\"") {
			t.Errorf("first drop: got log %q, want one line with why=\"rate limit\"", got)
		}

		// Three a minute is one every 20s.
		time.Sleep(19 * time.Second)
		d.Notify(backendEvent("web", "10.0.0.5:80", "up"))
		synctest.Wait()
		time.Sleep(time.Second)
		d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		d.Notify(backendEvent("web", "10.0.0.5:80", "up"))
		synctest.Wait()
		s = statsOf(d, "pager")
		if s.Sent != 4 || s.Dropped != 9 {
			t.Errorf("after 20s: got sent %d, dropped %d; want 4, 9", s.Sent, s.Dropped)
		}

		// The summary at the minute has the drops after the first.
		time.Sleep(40 * time.Second)
		synctest.Wait()
		if got := logs.lines("alert hook dropped events"); len(got) != 1 || !strings.Contains(got[0], " dropped=8 ") {
			t.Errorf("summary after a minute: got %q, want one line with dropped=8", got)
		}
		// A quiet minute resets it: the next drop is logged at once.
		time.Sleep(time.Minute)
		for range 4 {
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		}
		synctest.Wait()
		if got := len(logs.lines("alert hook dropping events; further drops are summed up each minute")); got != 2 {
			t.Errorf("drop after a quiet minute: got %d immediate log lines in all, want 2", got)
		}
		if err := stop(); err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	})
}

func TestFilters(t *testing.T) {
	t.Parallel()
	events := []Event{
		{Kind: "backend", Service: "web", State: "down"},
		{Kind: "backend", Service: "db", State: "down"},
		{Kind: "ha", State: "master"},
		{Kind: "ha", Service: "web", State: "backup"},
		{Kind: "backend", Service: "mail", State: "up"},
	}
	tests := []struct {
		name string
		hook Hook
		want []int // indexes into events
	}{
		{name: "all", hook: Hook{}, want: []int{0, 1, 2, 3, 4}},
		{name: "kind", hook: Hook{Kinds: []string{"ha"}}, want: []int{2, 3}},
		{name: "services", hook: Hook{Services: []string{"web", "mail"}}, want: []int{0, 3, 4}},
		{name: "kind and service", hook: Hook{Kinds: []string{"backend"}, Services: []string{"web"}}, want: []int{0}},
		{name: "no match", hook: Hook{Kinds: []string{"backend"}, Services: []string{"nope"}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want []Event
			for _, i := range tt.want {
				want = append(want, events[i])
			}
			var got []Event
			for _, ev := range events {
				if tt.hook.matches(&ev) {
					got = append(got, ev)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}

			// The same through a dispatcher; a last event for everyone
			// marks the end, since each hook delivers in order.
			rec, url := newRecorder(t)
			h := tt.hook
			h.Name, h.Webhook = "filtered", url
			d, _ := newDispatcher(t, h, Hook{Name: "marker", Webhook: url, Kinds: []string{"marker"}})
			start(t, d)
			for _, ev := range events {
				d.Notify(ev)
			}
			d.Notify(Event{Kind: "marker"})
			waitFor(t, "marker", func() bool { return statsOf(d, "marker").Sent == 1 })
			settled(t, d, "filtered", uint64(len(want)))
			var delivered []string
			for _, ev := range rec.got() {
				if ev.Kind != "marker" {
					delivered = append(delivered, ev.Kind+"/"+ev.Service+"/"+ev.State)
				}
			}
			var wantDelivered []string
			for _, ev := range want {
				wantDelivered = append(wantDelivered, ev.Kind+"/"+ev.Service+"/"+ev.State)
			}
			if diff := cmp.Diff(wantDelivered, delivered); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

// hangingServer answers no request until the test ends or the client
// gives up. arrived gets a value for each request.
func hangingServer(t *testing.T) (url string, arrived <-chan struct{}) {
	release := make(chan struct{})
	arrivals := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals <- struct{}{}
		// The server notices the client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for handlers
	return srv.URL, arrivals
}

// notifyAll sends n events and fails if that blocks. The bound only has to
// tell "returns" from "hangs", so it is generous for loaded machines.
func notifyAll(t *testing.T, d *Dispatcher, n int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d Notify calls did not return within 20s", n)
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	const n = 5000
	t.Run("not running", func(t *testing.T) {
		t.Parallel()
		d, logs := newDispatcher(t, Hook{Name: "h", Exec: []string{"true"}})
		notifyAll(t, d, n)
		if got, want := d.QueueDropped(), uint64(n-queueSize); got != want {
			t.Errorf("QueueDropped: got %d, want %d", got, want)
		}
		if got := len(logs.lines("alert queue full, dropping events; further drops are summed up each minute")); got != 1 {
			t.Errorf("got %d queue-full warnings, want 1", got)
		}
	})
	t.Run("hook hangs", func(t *testing.T) {
		t.Parallel()
		url, arrived := hangingServer(t)
		d, _ := newDispatcher(t, Hook{Name: "stuck", Webhook: url, Timeout: time.Hour, MaxPerMinute: 1 << 20})
		d.drain = 100 * time.Millisecond
		stop := start(t, d)
		d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		select {
		case <-arrived:
		case <-time.After(20 * time.Second):
			t.Fatal("the first event did not reach the webhook within 20s")
		}
		notifyAll(t, d, n)
		// With the first event hanging, whatever the dispatcher took in
		// filled the hook's queue and the rest overflowed.
		want := uint64(n - hookQueueSize)
		waitFor(t, fmt.Sprintf("%d events dropped or overflowed", want), func() bool {
			return d.QueueDropped()+statsOf(d, "stuck").Overflow >= want
		})
		if lost := d.QueueDropped() + statsOf(d, "stuck").Overflow; lost != want {
			t.Errorf("got %d dropped + %d overflowed, want %d in all", d.QueueDropped(), statsOf(d, "stuck").Overflow, want)
		}
		began := time.Now()
		if err := stop(); err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		if took := time.Since(began); took > 20*time.Second {
			t.Errorf("Run took %v to stop with a hanging hook, want about the 100ms drain", took)
		}
		if s := statsOf(d, "stuck"); s.Failed != 1 || !strings.HasSuffix(s.LastError, ": cancelled at shutdown") {
			t.Errorf("hanging delivery: got failed %d, error %q; want 1, cancelled at shutdown", s.Failed, s.LastError)
		}
	})
}

func TestSetHooks(t *testing.T) {
	t.Parallel()
	recA, urlA := newRecorder(t)
	recB, urlB := newRecorder(t)
	d, _ := newDispatcher(t, Hook{Name: "a", Webhook: urlA})
	start(t, d)

	e1 := backendEvent("web", "10.0.0.1:80", "down")
	d.Notify(e1)
	settled(t, d, "a", 1)

	d.SetHooks([]Hook{{Name: "b", Webhook: urlB}})
	e2 := backendEvent("web", "10.0.0.2:80", "down")
	d.Notify(e2)
	settled(t, d, "b", 1)
	if got := d.Stats(); len(got) != 1 || got[0].Name != "b" || got[0].Sent != 1 {
		t.Errorf("after replacing a with b: got stats %+v, want b with 1 sent", got)
	}

	// Same name, new destination: the counters go on.
	d.SetHooks([]Hook{{Name: "b", Webhook: urlA}})
	e3 := backendEvent("web", "10.0.0.3:80", "up")
	d.Notify(e3)
	s := settled(t, d, "b", 2)
	if s.Sent != 2 {
		t.Errorf("b after moving it: got %d sent, want 2", s.Sent)
	}
	if diff := cmp.Diff([]Event{e1, e3}, recA.got()); diff != "" {
		t.Errorf("receiver A (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Event{e2}, recB.got()); diff != "" {
		t.Errorf("receiver B (-want +got):\n%s", diff)
	}

	// Unnamed and duplicate names still get a counter each.
	d.SetHooks([]Hook{{Webhook: urlA}, {Name: "x", Webhook: urlA}, {Name: "x", Webhook: urlB}, {Name: "empty"}})
	var names []string
	for _, s := range d.Stats() {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"hook-0", "x", "x"}, names); diff != "" {
		t.Errorf("stats names (-want +got):\n%s", diff)
	}
	d.Notify(e1)
	waitFor(t, "both x hooks", func() bool {
		st := d.Stats()
		return st[1].Sent == 1 && st[2].Sent == 1
	})
}

// A hook removed while its program runs lets it finish and drops the rest
// of its queue; a hook added back waits for it, so its events stay in
// order.
func TestSetHooksRemoveWhileBusy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	gate := filepath.Join(dir, "gate")
	running := filepath.Join(dir, "running")
	argv := script(t, fmt.Sprintf(`touch %[3]s
while [ ! -e %[1]s ]; do sleep 0.01; done
echo "$FULCRUM_BACKEND" >> %[2]s
`, gate, out, running))
	hook := Hook{Name: "slow", Exec: argv}
	d, logs := newDispatcher(t, hook)
	start(t, d)
	d.Notify(backendEvent("web", "10.0.0.1:80", "down"))
	d.Notify(backendEvent("web", "10.0.0.2:80", "down"))
	waitFor(t, "the first program to run", func() bool { _, err := os.Stat(running); return err == nil })
	waitFor(t, "the second event queued", func() bool { return len(d.queue) == 0 })
	d.SetHooks(nil)
	d.SetHooks([]Hook{hook})
	d.Notify(backendEvent("web", "10.0.0.3:80", "down"))
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	settled(t, d, "slow", 1)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "10.0.0.1:80\n10.0.0.3:80\n"; string(got) != want {
		t.Errorf("delivered: got %q, want %q", got, want)
	}
	if got := logs.lines("alert hook discarded queued events"); len(got) != 1 || !strings.Contains(got[0], "events=1") {
		t.Errorf("discard log: got %q, want one line with events=1", got)
	}
}

func TestRunDrainsQueueAtShutdown(t *testing.T) {
	t.Parallel()
	rec, url := newRecorder(t)
	d, _ := newDispatcher(t, Hook{Name: "h", Webhook: url})
	var want []Event
	for i := range 5 {
		ev := backendEvent("web", fmt.Sprintf("10.0.0.%d:80", i), "down")
		want = append(want, ev)
		d.Notify(ev)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if diff := cmp.Diff(want, rec.got()); diff != "" {
		t.Errorf("delivered during the drain (-want +got):\n%s", diff)
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	d, _ := newDispatcher(t)
	stop := start(t, d)
	waitFor(t, "Run to start", d.running.Load)
	if err := d.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: got %v, want %v", err, ErrRunning)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	// A stopped dispatcher can run again.
	start(t, d)
}

// synctest.Test returns only when every goroutine started in the bubble
// has ended: workers, program watchers and HTTP connections included.
func TestRunStopsWithoutLeaks(t *testing.T) {
	t.Parallel()
	_, url := newRecorder(t)
	synctest.Test(t, func(t *testing.T) {
		d, _ := newDispatcher(t,
			Hook{Name: "exec", Exec: []string{"true"}},
			Hook{Name: "webhook", Webhook: url},
		)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()
		d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
		synctest.Wait()
		d.SetHooks([]Hook{{Name: "webhook", Webhook: url}, {Name: "new", Exec: []string{"true"}}})
		d.Notify(backendEvent("web", "10.0.0.5:80", "up"))
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		got := map[string]uint64{}
		for _, s := range d.Stats() {
			got[s.Name] = s.Sent
		}
		if diff := cmp.Diff(map[string]uint64{"webhook": 2, "new": 1}, got); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
	})
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		per   int
		at    []time.Duration // offsets from t0
		allow []bool
	}{
		{name: "burst", per: 3, at: []time.Duration{0, 0, 0, 0}, allow: []bool{true, true, true, false}},
		{name: "refill one", per: 3, at: []time.Duration{0, 0, 0, 19 * time.Second, 20 * time.Second, 20 * time.Second}, allow: []bool{true, true, true, false, true, false}},
		{name: "refill all", per: 2, at: []time.Duration{0, 0, 0, time.Hour, time.Hour, time.Hour}, allow: []bool{true, true, false, true, true, false}},
		{name: "steady", per: 60, at: []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}, allow: []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l limiter
			var got []bool
			for _, at := range tt.at {
				got = append(got, l.allow(t0.Add(at), tt.per))
			}
			if diff := cmp.Diff(tt.allow, got); diff != "" {
				t.Errorf("allow (-want +got):\n%s", diff)
			}
		})
	}
}
