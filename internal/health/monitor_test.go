package health

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// step is one scripted check.
type step struct {
	err       error
	took      time.Duration
	hang      bool // until the context is done
	ignoreCtx bool // sleeps took whatever the context says
}

var (
	ok      = step{}
	fail    = step{err: errors.New("status 503, want 200-399")}
	hang    = step{hang: true}
	errBoom = errors.New("boom")
)

type call struct {
	start, end time.Time
	target     Target
}

// script is a fake checker that replays its steps, the last one forever,
// and records its calls.
type script struct {
	mu    sync.Mutex
	steps []step
	calls []call
}

func (s *script) Check(ctx context.Context, t Target) error {
	s.mu.Lock()
	st := ok
	if n := len(s.steps); n > 0 {
		st = s.steps[min(len(s.calls), n-1)]
	}
	i := len(s.calls)
	s.calls = append(s.calls, call{start: time.Now(), target: t})
	s.mu.Unlock()
	err := st.err
	switch {
	case st.hang:
		<-ctx.Done()
		err = ctx.Err()
	case st.ignoreCtx:
		time.Sleep(st.took)
	case st.took > 0:
		select {
		case <-time.After(st.took):
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	s.calls[i].end = time.Now()
	s.mu.Unlock()
	return err
}

func (s *script) log() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// harness runs a Monitor inside a synctest bubble and records its
// transitions.
type harness struct {
	t        *testing.T
	m        *Monitor
	cancel   context.CancelFunc
	done     chan error
	mu       sync.Mutex
	trs      []Transition
	checkers int // how many checkers the monitor made
	// slow, when set, is how long onChange takes for a watch ID.
	slow map[string]time.Duration
}

// start begins a monitor whose checkers come from newChecker; must run
// inside the bubble.
func start(t *testing.T, newChecker func(Spec) Checker) *harness {
	h := &harness{t: t, done: make(chan error, 1)}
	h.m = NewMonitor(slog.New(slog.DiscardHandler), h.onChange)
	h.m.newChecker = func(s Spec) (Checker, error) {
		h.mu.Lock()
		h.checkers++
		h.mu.Unlock()
		return newChecker(s), nil
	}
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() { h.done <- h.m.Run(ctx) }()
	return h
}

func (h *harness) onChange(tr Transition) {
	h.mu.Lock()
	h.trs = append(h.trs, tr)
	d := h.slow[tr.ID]
	h.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

func (h *harness) transitions() []Transition {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Transition(nil), h.trs...)
}

// stop ends Run and checks that it returned at once.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	synctest.Wait()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: got %v, want nil", err)
		}
	default:
		h.t.Fatal("Run: got still running after its context ended, want returned")
	}
}

func (h *harness) status(id string) ProbeStatus {
	h.t.Helper()
	for _, st := range h.m.Status() {
		if st.ID == id {
			return st
		}
	}
	h.t.Fatalf("Status: got no watch %q", id)
	return ProbeStatus{}
}

var (
	backend = netip.MustParseAddrPort("10.0.0.5:80")
	webID   = "web|10.0.0.5:80"
)

func baseSpec() Spec {
	return Spec{Type: "tcp", Interval: 10 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, InitialUp: true}
}

func watch(id, service string, s Spec) Watch {
	return Watch{ID: id, Target: Target{Addr: backend, Backend: backend, Service: service}, Spec: s}
}

// tr is an expected transition of webID.
func tr(t0 time.Time, at time.Duration, from, to State, reason string) Transition {
	return Transition{ID: webID, Target: Target{Addr: backend, Backend: backend, Service: "web"},
		From: from, To: to, Reason: reason, At: t0.Add(at)}
}

func diffTransitions(t *testing.T, want, got []Transition) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
}

func TestRiseFall(t *testing.T) {
	t.Parallel()
	const why = "status 503, want 200-399"
	tests := []struct {
		name      string
		rise      int
		fall      int
		initialUp bool
		steps     []step
		want      func(t0 time.Time) []Transition
		wantState State
	}{
		{"rise 2 fall 3", 2, 3, true, []step{ok, ok, fail, fail, fail, ok, ok}, func(t0 time.Time) []Transition {
			return []Transition{tr(t0, 40*time.Second, Up, Down, why), tr(t0, 60*time.Second, Down, Up, "2 consecutive checks passed")}
		}, Up},
		{"rise 1 fall 1", 1, 1, true, []step{ok, fail, ok}, func(t0 time.Time) []Transition {
			return []Transition{tr(t0, 10*time.Second, Up, Down, why), tr(t0, 20*time.Second, Down, Up, "check passed")}
		}, Up},
		{"a success breaks a run of failures", 2, 3, true, []step{fail, fail, ok, fail, fail, ok}, func(time.Time) []Transition {
			return nil
		}, Up},
		{"initial down waits for rise", 2, 3, false, []step{fail, ok, ok}, func(t0 time.Time) []Transition {
			return []Transition{tr(t0, 20*time.Second, Down, Up, "2 consecutive checks passed")}
		}, Up},
		{"a failure breaks a run of successes", 2, 3, false, []step{ok, fail, ok, ok}, func(t0 time.Time) []Transition {
			return []Transition{tr(t0, 30*time.Second, Down, Up, "2 consecutive checks passed")}
		}, Up},
		{"initial down, never up", 2, 3, false, []step{fail}, func(time.Time) []Transition {
			return nil
		}, Down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sc := &script{steps: tt.steps}
				h := start(t, func(Spec) Checker { return sc })
				s := baseSpec()
				s.Rise, s.Fall, s.InitialUp = tt.rise, tt.fall, tt.initialUp
				t0 := time.Now()
				h.m.Set([]Watch{watch(webID, "web", s)})
				initial := Down
				if tt.initialUp {
					initial = Up
				}
				if got := h.status(webID).State; got != initial {
					t.Errorf("state before the first check: got %v, want %v", got, initial)
				}
				time.Sleep(time.Duration(len(tt.steps)-1)*s.Interval + s.Interval/2)
				synctest.Wait()
				diffTransitions(t, tt.want(t0), h.transitions())
				st := h.status(webID)
				if st.State != tt.wantState {
					t.Errorf("state: got %v, want %v", st.State, tt.wantState)
				}
				if st.Checks != uint64(len(tt.steps)) {
					t.Errorf("checks: got %d, want %d", st.Checks, len(tt.steps))
				}
				if want := uint64(len(tt.want(t0))); st.Flaps != want {
					t.Errorf("flaps: got %d, want %d", st.Flaps, want)
				}
				h.stop()
			})
		})
	}
}

func TestStatusFields(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sc := &script{steps: []step{{took: 300 * time.Millisecond}, {err: errBoom, took: 200 * time.Millisecond}}}
		h := start(t, func(Spec) Checker { return sc })
		s := baseSpec()
		s.Fall = 1
		t0 := time.Now()
		h.m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(15 * time.Second)
		synctest.Wait()
		want := ProbeStatus{
			ID: webID, Target: Target{Addr: backend, Backend: backend, Service: "web"}, Check: "tcp",
			State: Down, Since: t0.Add(10*time.Second + 500*time.Millisecond),
			LastCheck: t0.Add(10*time.Second + 300*time.Millisecond), LastDuration: 200 * time.Millisecond,
			LastOK: false, LastReason: "boom", Checks: 2, Failures: 1, Flaps: 1, Shared: 1,
		}
		// 200ms falls in the ≤250ms bucket, 300ms in the ≤500ms one.
		want.Durations.Counts[8], want.Durations.Counts[9] = 1, 1
		want.Durations.Count, want.Durations.Sum = 2, 500*time.Millisecond
		if diff := cmp.Diff([]ProbeStatus{want}, h.m.Status(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
		h.stop()
	})
}

func TestJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sc := &script{steps: []step{{took: 500 * time.Millisecond}}}
		h := start(t, func(Spec) Checker { return sc })
		s := baseSpec()
		s.Jitter = 3 * time.Second
		t0 := time.Now()
		h.m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(2000 * time.Second)
		synctest.Wait()
		h.stop()
		calls := sc.log()
		if len(calls) < 100 {
			t.Fatalf("got %d checks in 2000s, want at least 100", len(calls))
		}
		if first := calls[0].start.Sub(t0); first < 0 || first >= s.Jitter {
			t.Errorf("first check after %v, want within [0, %v)", first, s.Jitter)
		}
		gaps := map[time.Duration]bool{}
		for i := 1; i < len(calls)-1; i++ {
			gap := calls[i].start.Sub(calls[i-1].end)
			if gap < s.Interval || gap >= s.Interval+s.Jitter {
				t.Errorf("check %d started %v after the previous ended, want within [%v, %v)", i, gap, s.Interval, s.Interval+s.Jitter)
			}
			gaps[gap] = true
		}
		if len(gaps) < 10 {
			t.Errorf("got %d distinct waits in %d checks, want the jitter to vary them", len(gaps), len(calls))
		}
	})
}

func TestHangingCheckBoundedByTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		step  step
		endAt time.Duration // when the verdict comes
	}{
		{"respects its context", hang, time.Second},
		{"ignores its context", step{ignoreCtx: true, took: time.Hour}, time.Second + 100*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sc := &script{steps: []step{tt.step}}
				h := start(t, func(Spec) Checker { return sc })
				s := baseSpec()
				s.Fall = 1
				t0 := time.Now()
				h.m.Set([]Watch{watch(webID, "web", s)})
				time.Sleep(15 * time.Second)
				synctest.Wait()
				diffTransitions(t, []Transition{tr(t0, tt.endAt, Up, Down, "timeout after 1s")}, h.transitions())
				calls := sc.log()
				if len(calls) != 2 || !calls[1].start.Equal(t0.Add(tt.endAt+s.Interval)) {
					t.Errorf("got %d checks, the second at %v, want 2, the second %v after the verdict", len(calls), calls[len(calls)-1].start.Sub(t0), s.Interval)
				}
				h.stop()
				// The bubble ends only when the checks that ignored their
				// context have given up too.
				time.Sleep(2 * tt.step.took)
			})
		})
	}
}

func TestSetKeepsState(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sc := &script{steps: []step{fail}}
		h := start(t, func(Spec) Checker { return sc })
		t0 := time.Now()
		h.m.Set([]Watch{watch(webID, "web", baseSpec())})
		time.Sleep(15 * time.Second) // two failures of three
		synctest.Wait()

		// A reload: same check, new values (and a flipped initial state,
		// which only matters to a new probe).
		s := baseSpec()
		s.InitialUp = false
		h.m.Set([]Watch{watch(webID, "web", s)})
		if got := h.status(webID); got.State != Up || got.Checks != 2 || got.Failures != 2 {
			t.Errorf("after Set: got %v with %d checks, %d failures, want up with 2 and 2", got.State, got.Checks, got.Failures)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		diffTransitions(t, []Transition{tr(t0, 20*time.Second, Up, Down, "status 503, want 200-399")}, h.transitions())
		for i, c := range sc.log() {
			if want := t0.Add(time.Duration(i) * 10 * time.Second); !c.start.Equal(want) {
				t.Errorf("check %d at %v, want %v: the rhythm survives Set", i, c.start.Sub(t0), want.Sub(t0))
			}
		}
		if got := h.checkers; got != 1 {
			t.Errorf("got %d checkers made, want 1", got)
		}
		h.stop()
	})
}

func TestSetRemovesProbe(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sc := &script{steps: []step{fail, hang}}
		h := start(t, func(Spec) Checker { return sc })
		s := baseSpec()
		s.Fall, s.Timeout = 2, time.Minute
		h.m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(15 * time.Second) // one failure, and a check hanging in flight
		synctest.Wait()
		h.m.Set(nil)
		if got := h.m.Status(); len(got) != 0 {
			t.Errorf("status after removal: got %v, want none", got)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := h.transitions(); len(got) != 0 {
			t.Errorf("got transitions %v, want none from a removed probe", got)
		}
		if got := len(sc.log()); got != 2 {
			t.Errorf("got %d checks, want 2: none after removal", got)
		}
		for i, c := range sc.log() {
			if c.end.IsZero() {
				t.Errorf("check %d: got still running, want cancelled by the removal", i)
			}
		}
		// A watch added back is a new probe in its initial state.
		h.m.Set([]Watch{watch(webID, "web", s)})
		if got := h.status(webID); got.Checks != 0 || got.State != Up {
			t.Errorf("re-added: got %v with %d checks, want a new probe, up with 0", got.State, got.Checks)
		}
		h.stop()
	})
}

func TestDedupe(t *testing.T) {
	t.Parallel()
	other := baseSpec()
	other.Fall = 2
	tests := []struct {
		name         string
		spec2        Spec
		target2      netip.AddrPort
		wantCheckers int
		wantCalls    int // in 35s, over all checkers
		wantShared   int
	}{
		{"same target and spec", baseSpec(), backend, 1, 4, 2},
		{"different spec", other, backend, 2, 8, 1},
		{"different target", baseSpec(), netip.MustParseAddrPort("10.0.0.6:80"), 2, 8, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var scripts []*script
				h := start(t, func(Spec) Checker {
					mu.Lock()
					defer mu.Unlock()
					sc := &script{steps: []step{fail}}
					scripts = append(scripts, sc)
					return sc
				})
				w1 := watch(webID, "web", baseSpec())
				w2 := watch("mail|10.0.0.5:80", "mail", tt.spec2)
				w2.Target.Addr, w2.Target.Backend = tt.target2, tt.target2
				h.m.Set([]Watch{w1, w2})
				time.Sleep(35 * time.Second)
				synctest.Wait()
				h.stop()
				calls := 0
				for _, sc := range scripts {
					calls += len(sc.log())
				}
				if len(scripts) != tt.wantCheckers || calls != tt.wantCalls {
					t.Errorf("got %d checkers and %d checks, want %d and %d", len(scripts), calls, tt.wantCheckers, tt.wantCalls)
				}
				down := map[string]bool{}
				for _, tr := range h.transitions() {
					down[tr.ID] = tr.To == Down
				}
				if !down[w1.ID] || !down[w2.ID] {
					t.Errorf("got down %v, want both watches down", down)
				}
				for _, st := range h.m.Status() {
					if st.Shared != tt.wantShared {
						t.Errorf("%s: got shared %d, want %d", st.ID, st.Shared, tt.wantShared)
					}
				}
				if tt.wantCheckers == 1 {
					if got := scripts[0].log()[0].target; got.Service != "" || got.Addr != backend {
						t.Errorf("shared probe's target: got %+v, want the address and no service", got)
					}
				}
			})
		})
	}
}

// A watch that moves to another probe on a reload hears nothing more from
// the old one.
func TestSetMovesWatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, func(s Spec) Checker {
			if s.Path == "/old" {
				return &script{steps: []step{ok, {err: errBoom, took: 20 * time.Second}}}
			}
			return &script{steps: []step{ok}}
		})
		s := baseSpec()
		s.Type, s.Path, s.Fall, s.Timeout = "http", "/old", 1, time.Minute
		h.m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(15 * time.Second) // the second old check is in flight
		synctest.Wait()
		s.Path = "/new"
		h.m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := h.transitions(); len(got) != 0 {
			t.Errorf("got %v, want no transition: the old probe is gone and the new one is up", got)
		}
		if got := h.status(webID); got.State != Up || got.Checks == 0 {
			t.Errorf("got %v after %d checks, want the new probe's up with checks", got.State, got.Checks)
		}
		h.stop()
	})
}

func TestPassive(t *testing.T) {
	t.Parallel()
	type report struct {
		fail   bool
		reason string
	}
	f := func(r string) report { return report{fail: true, reason: r} }
	s := report{}
	tests := []struct {
		name     string
		passive  int
		reports  []report
		wantDown bool
	}{
		{"threshold reached", 3, []report{f("connect failed"), f("connect failed"), f("connection refused")}, true},
		{"a success in between resets", 3, []report{f("a"), f("b"), s, f("c"), f("d")}, false},
		{"a success after the threshold does not undo it", 3, []report{f("a"), f("b"), f("connection refused"), s}, true},
		{"below the threshold", 3, []report{f("a"), f("b")}, false},
		{"passive off", 0, []report{f("a"), f("b"), f("c"), f("d")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sc := &script{steps: []step{ok}}
				h := start(t, func(Spec) Checker { return sc })
				w := watch(webID, "web", baseSpec())
				w.PassiveFailures = tt.passive
				t0 := time.Now()
				h.m.Set([]Watch{w})
				time.Sleep(time.Second)
				for _, r := range tt.reports {
					if r.fail {
						h.m.ReportFailure(webID, r.reason)
					} else {
						h.m.ReportSuccess(webID)
					}
				}
				h.m.ReportFailure("no such watch", "ignored")
				synctest.Wait()
				var want []Transition
				if tt.wantDown {
					down := tr(t0, time.Second, Up, Down, "passive: 3 consecutive failures: connection refused")
					down.Passive = true
					want = append(want, down)
					// Active checks bring it back after Rise successes.
					want = append(want, tr(t0, 20*time.Second, Down, Up, "2 consecutive checks passed"))
				}
				time.Sleep(25 * time.Second)
				synctest.Wait()
				diffTransitions(t, want, h.transitions())
				if tt.wantDown {
					// The count starts again after the recovery.
					h.m.ReportFailure(webID, "x")
					h.m.ReportFailure(webID, "x")
					synctest.Wait()
					if got := len(h.transitions()); got != 2 {
						t.Errorf("two failures after recovery: got %d transitions, want still 2", got)
					}
				}
				h.stop()
			})
		})
	}
}

func TestPassiveStatusReason(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := start(t, func(Spec) Checker { return &script{steps: []step{ok}} })
		s := baseSpec()
		s.Interval = time.Hour
		w := watch(webID, "web", s)
		w.PassiveFailures = 1
		h.m.Set([]Watch{w})
		synctest.Wait()
		h.m.ReportFailure(webID, "connect failed")
		synctest.Wait()
		got := h.status(webID)
		if got.State != Down || got.LastOK || got.LastReason != "passive: 1 consecutive failures: connect failed" {
			t.Errorf("got %v, last ok %v, reason %q, want down with the passive reason", got.State, got.LastOK, got.LastReason)
		}
		h.stop()
	})
}

func TestShutdownIsNotDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step step
	}{
		{"check returns the context's error", hang},
		{"check returns its own error", step{err: errBoom, took: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				sc := &script{steps: []step{ok, tt.step}}
				h := start(t, func(Spec) Checker { return sc })
				s := baseSpec()
				s.Fall, s.Timeout = 1, time.Hour
				h.m.Set([]Watch{watch(webID, "web", s)})
				time.Sleep(15 * time.Second)
				synctest.Wait()
				h.stop()
				if got := h.transitions(); len(got) != 0 {
					t.Errorf("got %v, want no transition at shutdown", got)
				}
				if got := h.m.Status()[0]; got.State != Up || got.Checks != 1 {
					t.Errorf("got %v after %d checks, want up after 1: the cancelled check is no verdict", got.State, got.Checks)
				}
			})
		})
	}
}

// A slow onChange holds up only its own probe: other probes keep their
// rhythm, Status and the Report methods answer, and each watch's
// transitions arrive in order.
func TestSlowOnChange(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var flapping, steady *script
		h := start(t, func(s Spec) Checker {
			if s.Path == "/flap" {
				flapping = &script{steps: []step{fail, ok, fail, ok, fail, ok, fail, ok}}
				return flapping
			}
			steady = &script{steps: []step{ok}}
			return steady
		})
		h.slow = map[string]time.Duration{webID: time.Minute}
		s := baseSpec()
		s.Type, s.Rise, s.Fall = "http", 1, 1
		flap, other := s, s
		flap.Path, other.Path = "/flap", "/steady"
		h.m.Set([]Watch{watch(webID, "web", flap), watch("other", "other", other)})
		time.Sleep(30 * time.Second) // onChange for webID is sleeping
		h.m.Status()
		h.m.ReportFailure(webID, "x")
		h.m.ReportSuccess(webID)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		h.stop()
		for i, c := range steady.log()[1:] {
			if gap := c.start.Sub(steady.log()[i].end); gap != s.Interval {
				t.Errorf("steady check %d: got a wait of %v, want %v", i+1, gap, s.Interval)
			}
		}
		trs := h.transitions()
		if len(trs) < 4 {
			t.Fatalf("got %d transitions, want the flapping watch to flap", len(trs))
		}
		for i := 1; i < len(trs); i++ {
			if trs[i].From != trs[i-1].To || trs[i].At.Before(trs[i-1].At) {
				t.Errorf("transition %d: got %v→%v at %v after %v→%v at %v, want in order",
					i, trs[i].From, trs[i].To, trs[i].At, trs[i-1].From, trs[i-1].To, trs[i-1].At)
			}
		}
	})
}

// A backend going down loses redundancy and is logged at WARN; coming
// back is INFO.
func TestTransitionLog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf syncbuf.Buffer
		m := NewMonitor(slog.New(slog.NewJSONHandler(&buf, nil)), nil)
		m.newChecker = func(Spec) (Checker, error) { return &script{steps: []step{fail, ok}}, nil }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.Run(ctx)
		}()
		s := baseSpec()
		s.Fall, s.Rise = 1, 1
		m.Set([]Watch{watch(webID, "web", s)})
		time.Sleep(s.Interval + s.Jitter + time.Second) // the second check, in the bubble's time
		synctest.Wait()
		cancel()
		<-done
		lines := buf.Lines()
		if len(lines) != 2 {
			t.Fatalf("got %d log lines %q, want 2 (down, then up)", len(lines), buf.String())
		}
		wants := []map[string]any{
			{"level": "WARN", "service": "web", "backend": "10.0.0.5:80", "state": "down",
				"prev_state": "up", "reason": "status 503, want 200-399", "check": "tcp", "passive": false},
			{"level": "INFO", "service": "web", "backend": "10.0.0.5:80", "state": "up",
				"prev_state": "down", "reason": "check passed", "check": "tcp", "passive": false},
		}
		for i, want := range wants {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
				t.Fatalf("log %q: %v", lines[i], err)
			}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("line %d key %s: got %v, want %v", i, k, rec[k], v)
				}
			}
		}
	})
}

func TestSetBeforeRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sc := &script{steps: []step{fail}}
		m := NewMonitor(slog.New(slog.DiscardHandler), nil)
		m.newChecker = func(Spec) (Checker, error) { return sc, nil }
		s := baseSpec()
		s.InitialUp = false
		m.Set([]Watch{watch(webID, "web", s), watch(webID, "dup", s), watch("", "empty", s)})
		st := m.Status()
		if len(st) != 1 || st[0].State != Down {
			t.Fatalf("got %+v, want one watch (the duplicate and empty ids left out), down", st)
		}
		time.Sleep(time.Minute)
		if got := len(sc.log()); got != 0 {
			t.Errorf("got %d checks before Run, want 0", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.Run(ctx)
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := len(sc.log()); got != 1 {
			t.Errorf("got %d checks after Run started, want 1", got)
		}
		cancel()
		<-done
	})
}

func TestSetLeavesOutUnrunnable(t *testing.T) {
	t.Parallel()
	m := NewMonitor(slog.New(slog.DiscardHandler), nil)
	good := Watch{ID: "good", Target: Target{Addr: backend}, Spec: baseSpec()}
	bad := Watch{ID: "bad", Target: Target{Addr: backend}, Spec: Spec{Type: "icmp"}}
	m.Set([]Watch{good, bad})
	st := m.Status()
	if len(st) != 1 || st[0].ID != "good" {
		t.Errorf("got %+v, want only the watch that can run", st)
	}
}
