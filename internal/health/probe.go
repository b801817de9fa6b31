package health

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// probe checks one target with one spec for one or more watches.
type probe struct {
	spec    Spec
	checker Checker
	passive chan struct{} // ReportFailure → run: a member tripped

	// cancel stops run; guarded by Monitor.mu, nil until Run starts it.
	cancel context.CancelFunc

	// mu orders Set's changes of membership with the transitions run
	// emits: it is held while onChange runs, so once Set returns, a
	// removed probe, or a watch that left, hears nothing more from it.
	mu      sync.Mutex
	members []*member
	target  Target
	removed bool

	// stateMu guards st, which run writes and Status reads.
	stateMu sync.Mutex
	st      probeState
	// durations are the active checks' durations, in the request latency
	// buckets so that both read alike on /metrics.
	durations balancer.Histogram

	// Consecutive check results; owned by run's goroutine.
	okRun, failRun int
}

type probeState struct {
	state        State
	since        time.Time
	lastCheck    time.Time
	lastDuration time.Duration
	lastOK       bool
	lastReason   string
	checks       uint64
	failures     uint64
	flaps        uint64
}

func newProbe(ws []Watch, c Checker, now time.Time) *probe {
	state := Up
	for _, w := range ws {
		if !w.Spec.InitialUp {
			state = Down
		}
	}
	return &probe{
		spec:    ws[0].Spec,
		checker: c,
		passive: make(chan struct{}, 1),
		st:      probeState{state: state, since: now},
	}
}

// inflight is a check running on its own goroutine, so that run keeps
// answering passive failures and cancellation while it runs.
type inflight struct {
	start  time.Time
	cancel context.CancelFunc
	done   chan result // buffered: a check that ends after run gave up on it does not block
	// overdue fires a little after the check's deadline, for a checker
	// that ignores its context.
	overdue *time.Timer
}

type result struct {
	err error
	dur time.Duration
}

// run is the probe's goroutine: one check at a time, Interval (plus
// jitter) after the end of the previous one.
func (p *probe) run(ctx context.Context, m *Monitor) {
	timer := time.NewTimer(p.firstWait())
	defer timer.Stop()
	var check *inflight
	defer func() {
		if check != nil {
			// A well-behaved check returns at once when cancelled; one that
			// does not is waited for no longer than its deadline allows.
			check.cancel()
			select {
			case <-check.done:
			case <-check.overdue.C:
			}
			check.overdue.Stop()
		}
	}()
	for {
		var done <-chan result
		var overdue <-chan time.Time
		if check != nil {
			done, overdue = check.done, check.overdue.C
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			check = p.start(ctx)
		case r := <-done:
			check.cancel()
			check.overdue.Stop()
			start := check.start
			check = nil
			// A check ended by shutdown or removal says nothing about the
			// backend.
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(r.err, context.Canceled) {
				p.record(m, r.err, start, r.dur)
			}
			timer.Reset(p.wait())
		case <-overdue:
			check.cancel()
			start := check.start
			check = nil
			p.record(m, context.DeadlineExceeded, start, time.Since(start))
			timer.Reset(p.wait())
		case <-p.passive:
			p.passiveDown(m)
		}
	}
}

func (p *probe) start(ctx context.Context) *inflight {
	cctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	c := &inflight{
		start:   time.Now(),
		cancel:  cancel,
		done:    make(chan result, 1),
		overdue: time.NewTimer(p.spec.Timeout + max(p.spec.Timeout/10, time.Millisecond)),
	}
	p.mu.Lock()
	t := p.target
	p.mu.Unlock()
	go func() {
		err := p.checker.Check(cctx, t)
		c.done <- result{err: err, dur: time.Since(c.start)}
	}()
	return c
}

// firstWait spreads the first checks of probes born together over the
// jitter.
func (p *probe) firstWait() time.Duration {
	if p.spec.Jitter <= 0 {
		return 0
	}
	return rand.N(p.spec.Jitter)
}

func (p *probe) wait() time.Duration {
	if p.spec.Jitter <= 0 {
		return p.spec.Interval
	}
	return p.spec.Interval + rand.N(p.spec.Jitter)
}

// record applies one check's verdict: counters, published state, and a
// transition when Rise or Fall is reached.
func (p *probe) record(m *Monitor, err error, start time.Time, dur time.Duration) {
	reason := ""
	if err != nil {
		reason = reasonOf(err, p.spec.Timeout)
		p.okRun, p.failRun = 0, p.failRun+1
	} else {
		p.okRun, p.failRun = p.okRun+1, 0
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return
	}
	now := time.Now()
	p.stateMu.Lock()
	st := &p.st
	st.checks++
	if err != nil {
		st.failures++
	}
	st.lastCheck, st.lastDuration = start, dur
	p.durations.Observe(dur)
	st.lastOK, st.lastReason = err == nil, reason
	from, to := st.state, st.state
	switch {
	case err == nil && from != Up && p.okRun >= p.spec.Rise:
		to = Up
		reason = passedReason(p.okRun)
	case err != nil && from != Down && p.failRun >= p.spec.Fall:
		to = Down
	}
	if to != from {
		st.state, st.since = to, now
		st.flaps++
	}
	p.stateMu.Unlock()
	if to == from {
		return
	}
	if to == Up {
		// Failures on real traffic before the recovery are history.
		for _, mem := range p.members {
			mem.failures.Store(0)
			mem.tripped.Store(nil)
		}
	}
	p.emit(m, from, to, reason, now, false)
}

// passiveDown takes the probe down if a member reached its passive
// threshold while it was up.
func (p *probe) passiveDown(m *Monitor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return
	}
	var why string
	for _, mem := range p.members {
		if r := mem.tripped.Swap(nil); r != nil {
			mem.failures.Store(0)
			if why == "" {
				why = "passive: " + strconv.Itoa(mem.w.PassiveFailures) + " consecutive failures: " + *r
			}
		}
	}
	if why == "" {
		return
	}
	now := time.Now()
	p.stateMu.Lock()
	from := p.st.state
	if from == Down {
		p.stateMu.Unlock()
		return
	}
	p.st.state, p.st.since = Down, now
	p.st.flaps++
	p.st.lastOK, p.st.lastReason = false, why
	p.stateMu.Unlock()
	// Active checks bring it back after Rise successes from now.
	p.okRun, p.failRun = 0, 0
	p.emit(m, from, Down, why, now, true)
}

// emit logs and delivers a transition to every member; p.mu is held. A
// backend going down is a WARN (the service lost redundancy, or a
// fallback lost its last resort); one coming back is INFO.
func (p *probe) emit(m *Monitor, from, to State, reason string, at time.Time, passive bool) {
	level := slog.LevelInfo
	if to == Down {
		level = slog.LevelWarn
	}
	for _, mem := range p.members {
		m.log.Log(context.Background(), level, "backend health changed",
			"service", mem.w.Target.Service, "backend", backendOf(mem.w.Target),
			"state", to.String(), "prev_state", from.String(), "reason", reason,
			"check", p.spec.Type, "passive", passive)
		m.onChange(Transition{
			ID: mem.w.ID, Target: mem.w.Target,
			From: from, To: to, Reason: reason, At: at, Passive: passive,
		})
	}
}

// reasonOf is the reason of a failed check. A checker that returns its
// context's error as is gets the same wording as ours.
func reasonOf(err error, timeout time.Duration) string {
	switch s := err.Error(); {
	case errors.Is(err, context.DeadlineExceeded) && s == context.DeadlineExceeded.Error():
		return "timeout after " + timeout.String()
	case s == "":
		return "check failed"
	default:
		return s
	}
}

func passedReason(n int) string {
	if n == 1 {
		return "check passed"
	}
	return strconv.Itoa(n) + " consecutive checks passed"
}

// backendOf is the backend a target stands for in logs.
func backendOf(t Target) netip.AddrPort {
	if t.Backend.IsValid() {
		return t.Backend
	}
	return t.Addr
}
