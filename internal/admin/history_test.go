package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func f(v float64) *float64 { return &v }

func TestHistoryRates(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	tcp := func(at time.Duration, accepted, noBackend uint64, backends ...Backend) Status {
		return Status{Time: t0.Add(at), Services: []Service{{Name: "db", Protocol: "tcp",
			Counters: Counters{Accepted: accepted, NoBackend: noBackend}, Backends: backends}}}
	}
	be := func(addr string, total, fails uint64) Backend {
		return Backend{Address: addr, Total: total, ConnectFailures: fails}
	}
	h := newHistory(nil, time.Second, 3*time.Second) // keeps 4 samples
	h.sample(tcp(0, 0, 0, be("a", 0, 0)))
	h.sample(tcp(1*time.Second, 10, 1, be("a", 10, 0)))
	// b appears; the service's counters are reset by a reload.
	h.sample(tcp(3*time.Second, 4, 1, be("a", 30, 2), be("b", 5, 0)))
	h.sample(tcp(4*time.Second, 8, 1, be("a", 30, 2), be("b", 7, 1)))
	got := h.snapshot()
	want := []HistorySeries{
		{Service: "db", Unit: "conn/s", Rate: []*float64{f(10), nil, f(4)}, Errors: []*float64{f(1), f(0), f(0)}},
		{Service: "db", Backend: "a", Unit: "conn/s", Rate: []*float64{f(10), f(10), f(0)}, Errors: []*float64{f(0), f(1), f(0)}},
		{Service: "db", Backend: "b", Unit: "conn/s", Rate: []*float64{nil, nil, f(2)}, Errors: []*float64{nil, nil, f(1)}},
	}
	if diff := cmp.Diff(want, got.Series); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	wantTimes := []int64{t0.Add(time.Second).UnixMilli(), t0.Add(3 * time.Second).UnixMilli(), t0.Add(4 * time.Second).UnixMilli()}
	if diff := cmp.Diff(wantTimes, got.Times); diff != "" {
		t.Errorf("times (-want +got):\n%s", diff)
	}
	if got.IntervalMS != 1000 || got.WindowMS != 3000 {
		t.Errorf("interval, window: got %d, %d ms; want 1000, 3000", got.IntervalMS, got.WindowMS)
	}

	// The oldest sample goes; a removed backend goes with the next sample;
	// an HTTP service counts requests and 5xx.
	h.sample(Status{Time: t0.Add(5 * time.Second), Services: []Service{{Name: "db", Protocol: "tcp",
		Counters: Counters{Accepted: 9}, Backends: []Backend{be("a", 31, 2)}}}})
	got = h.snapshot()
	if len(got.Times) != 3 || got.Times[0] != wantTimes[1] {
		t.Errorf("times after a fifth sample: got %v, want 3 starting at %d", got.Times, wantTimes[1])
	}
	if len(got.Series) != 2 || got.Series[1].Backend != "a" || *got.Series[1].Rate[2] != 1 {
		t.Errorf("series after b went: got %+v, want db and a (1 conn/s last)", got.Series)
	}

	web := func(at time.Duration, reqs, s5xx, breqs, berrs uint64) Status {
		return Status{Time: t0.Add(at), Services: []Service{{Name: "web", Protocol: "http",
			Counters: Counters{Accepted: 1, ConnectFailures: 7}, HTTP: &HTTPCounters{Requests: reqs, Status5xx: s5xx},
			Routes: []Route{{Name: "web/api", Backends: []Backend{{Address: "c", Total: 1, Requests: breqs, Errors: berrs}}}}}}}
	}
	h = newHistory(nil, time.Second, time.Minute)
	h.sample(web(0, 100, 1, 50, 0))
	h.sample(web(2*time.Second, 300, 5, 90, 2))
	got = h.snapshot()
	want = []HistorySeries{
		{Service: "web", Unit: "req/s", Rate: []*float64{f(100)}, Errors: []*float64{f(2)}},
		{Service: "web/api", Backend: "c", Unit: "req/s", Rate: []*float64{f(20)}, Errors: []*float64{f(1)}},
	}
	if diff := cmp.Diff(want, got.Series); diff != "" {
		t.Errorf("http series (-want +got):\n%s", diff)
	}
}

func TestHistoryHATransitions(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 20, 41, 0, 0, time.UTC)
	ha := func(at time.Duration, groups ...HAGroup) Status {
		return Status{Time: t0.Add(at), HA: groups}
	}
	g := func(name, state string, since time.Duration, transitions uint64) HAGroup {
		return HAGroup{Name: name, State: state, Since: t0.Add(since), Transitions: transitions}
	}
	h := newHistory(nil, time.Second, time.Minute)
	h.sample(ha(0, g("web", "backup", -time.Hour, 1), g("db", "master", -time.Hour, 2)))
	h.sample(ha(2*time.Second, g("web", "master", 1500*time.Millisecond, 2), g("db", "master", -time.Hour, 2)))
	// db flaps faster than the sampling: master, backup, master.
	h.sample(ha(4*time.Second, g("web", "master", 1500*time.Millisecond, 2), g("db", "master", 3900*time.Millisecond, 4)))
	got := h.snapshot().HA
	want := []HAHistory{
		{Group: "web", State: "master", FirstSeen: t0, Transitions: []HATransition{
			{Time: t0.Add(1500 * time.Millisecond), From: "backup", To: "master", Changes: 1}}},
		{Group: "db", State: "master", FirstSeen: t0, Transitions: []HATransition{
			{Time: t0.Add(3900 * time.Millisecond), From: "master", To: "master", Changes: 2}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HA (-want +got):\n%s", diff)
	}

	// A group removed by a reload goes; one whose reported time is off
	// gets the sample's time; the list is bounded.
	h.sample(ha(6*time.Second, g("web", "fault", -time.Hour, 3)))
	got = h.snapshot().HA
	if len(got) != 1 || got[0].Group != "web" || len(got[0].Transitions) != 2 ||
		got[0].Transitions[1] != (HATransition{Time: t0.Add(6 * time.Second), From: "master", To: "fault", Changes: 1}) {
		t.Errorf("after db went and web faulted: got %+v", got)
	}
	for i := range 2 * maxHATransitions {
		state := []string{"backup", "master"}[i%2]
		h.sample(ha(time.Duration(7+i)*time.Second, g("web", state, time.Duration(7+i)*time.Second, uint64(4+i))))
	}
	if got := h.snapshot().HA[0].Transitions; len(got) != maxHATransitions || got[len(got)-1].To != "master" {
		t.Errorf("after many changes: got %d kept, the last to %q; want %d, the last to master", len(got), got[len(got)-1].To, maxHATransitions)
	}
}

// countingSource is a Source whose counters grow 100,000 per second of
// its status's own clock: fine enough that two samples a few milliseconds
// apart (a late tick followed by one on time, on a busy machine) still
// give the rate within a percent.
type countingSource struct {
	mu    sync.Mutex
	start time.Time
	calls int
}

func (c *countingSource) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	now := time.Now()
	n := uint64(now.Sub(c.start).Microseconds() / 10)
	return Status{Time: now, Services: []Service{{Name: "db", Protocol: "tcp", Counters: Counters{Accepted: n}}}}
}

func TestHistoryAPI(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSource{start: time.Now()}
	srv := New(Options{Source: src, HistoryInterval: 100 * time.Millisecond, HistoryWindow: time.Minute,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-done
	}()
	url := "http://" + ln.Addr().String() + "/api/v1/history"
	var h History
	deadline := time.Now().Add(30 * time.Second)
	for len(h.Times) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("history: got %d points after 30 s, want 3 (sampled every 100 ms)", len(h.Times))
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
			t.Fatalf("GET /api/v1/history: %d %q", resp.StatusCode, ct)
		}
		h = History{}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h.IntervalMS != 100 || len(h.Series) != 1 || len(h.Series[0].Rate) != len(h.Times) {
		t.Fatalf("history: got %+v, want one series with a rate per time", h)
	}
	for i, r := range h.Series[0].Rate {
		// 100,000/s by the status's own clock, which the rates follow;
		// the counter rounds to whole 10 µs.
		if r == nil {
			t.Errorf("rate %d: got none, want about 100000/s", i)
		} else if *r < 95000 || *r > 105000 {
			t.Errorf("rate %d: got %.0f/s, want about 100000/s", i, *r)
		}
	}
	// The sampler stops with the server.
	cancel()
	<-done
	src.mu.Lock()
	calls := src.calls
	src.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.calls != calls {
		t.Errorf("status read %d times after Serve returned, want 0", src.calls-calls)
	}
	done <- nil // for the deferred stop
}
