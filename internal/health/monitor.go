package health

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// State is a probe's verdict.
type State int

const (
	Up State = iota + 1
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// Watch asks the monitor to watch one (service, backend) pair.
type Watch struct {
	// ID names the watch in transitions, status and passive reports; it
	// is unique within one Set.
	ID     string
	Target Target
	Spec   Spec
	// PassiveFailures, when above 0, takes the probe down at once after
	// that many consecutive ReportFailure calls for this watch with no
	// ReportSuccess between them.
	PassiveFailures int
}

// Transition is a change of a watch's state.
type Transition struct {
	ID       string
	Target   Target
	From, To State
	// Reason is the failing check's reason when going down, and says how
	// many checks passed when going up.
	Reason string
	At     time.Time
	// Passive is true when failures on real traffic took the watch down.
	Passive bool
}

// ProbeStatus is the state of one watch's probe.
type ProbeStatus struct {
	ID     string
	Target Target
	Check  string // the spec's type
	State  State
	Since  time.Time // the last transition, or when the probe started
	// The last verdict. LastReason is empty when LastOK; a passive
	// verdict sets LastOK and LastReason but not LastCheck.
	LastCheck    time.Time
	LastDuration time.Duration
	LastOK       bool
	LastReason   string
	Checks       uint64
	Failures     uint64
	Flaps        uint64 // transitions since the probe started
	// Durations counts the active checks' durations since the probe
	// started (a probe shared by several watches reports the same
	// histogram for each).
	Durations balancer.HistogramSnapshot
	// Shared is how many watches the probe serves, this one included.
	Shared int
}

// Monitor runs one probe per distinct check and reports transitions.
//
// Set, Status, ReportFailure and ReportSuccess are safe from any
// goroutine, before, during and after Run.
type Monitor struct {
	log      *slog.Logger
	onChange func(Transition)
	// newChecker is NewChecker; tests substitute scripted checkers.
	newChecker func(Spec) (Checker, error)

	// mu serializes Set with itself and with Run starting probes. Set
	// applies under it rather than by asking Run, so that Status reflects
	// a Set as soon as Set returns, even before Run has started.
	mu     sync.Mutex
	probes map[string]*probe // by probeKey

	// table is what Status and the passive reports read without a lock;
	// Set replaces it whole.
	table   atomic.Pointer[table]
	changed chan struct{} // Set → Run: probes to start
}

// table maps each watch ID to its member of a probe.
type table struct {
	byID map[string]*member
}

// member is one watch on a probe. A new member is made for each Set, so
// its fields are immutable but for the passive counters.
type member struct {
	w      Watch
	p      *probe
	shared int

	// failures counts consecutive passive failures. tripped holds the
	// reason of the failure that reached PassiveFailures until the probe
	// consumes it: a ReportSuccess racing with the probe must not undo a
	// threshold already reached.
	failures atomic.Int64
	tripped  atomic.Pointer[string]
}

// NewMonitor returns a monitor with no watches; Set gives it some.
//
// onChange receives every transition of every watch, from the probe's
// goroutine, in order for each watch ID. It must not block, and must not
// call Set (Set waits for a transition being delivered, so that no removed
// probe reports after Set returns); Status and the Report methods are
// fine. A nil onChange only logs.
func NewMonitor(log *slog.Logger, onChange func(Transition)) *Monitor {
	if log == nil {
		log = slog.Default()
	}
	if onChange == nil {
		onChange = func(Transition) {}
	}
	m := &Monitor{
		log:        log,
		onChange:   onChange,
		newChecker: NewChecker,
		probes:     map[string]*probe{},
		changed:    make(chan struct{}, 1),
	}
	m.table.Store(&table{byID: map[string]*member{}})
	return m
}

// Run starts the probes and keeps starting those that Set adds, until ctx
// is done; then it stops every probe, cancelling checks in flight, and
// returns nil. Run is called once.
func (m *Monitor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for {
		m.mu.Lock()
		for _, p := range m.probes {
			if p.cancel == nil {
				pctx, cancel := context.WithCancel(ctx)
				p.cancel = cancel
				wg.Go(func() { p.run(pctx, m) })
			}
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-m.changed:
		}
	}
}

// Set makes ws the watched set. Watches with the same check address and
// spec share one probe (exec checks also need the same backend and
// service, which their command sees). A probe whose key remains keeps its
// state, counters and rhythm; a new one starts in its spec's initial state
// (down if any of its watches asks for down); a probe no longer wanted
// stops at once, its check in flight cancelled and never reported.
//
// A watch whose ID is empty or repeated, or whose spec cannot be run, is
// logged and left out. Set does not block on checks.
func (m *Monitor) Set(ws []Watch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.table.Load()

	var keys []string
	groups := map[string][]Watch{}
	seen := map[string]bool{}
	for _, w := range ws {
		if w.ID == "" || seen[w.ID] {
			m.log.Error("health watch left out: empty or repeated id", "id", w.ID,
				"service", w.Target.Service, "backend", backendOf(w.Target))
			continue
		}
		seen[w.ID] = true
		k := probeKey(w)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], w)
	}

	now := time.Now()
	next := make(map[string]*probe, len(keys))
	members := make(map[*probe][]*member, len(keys))
	byID := make(map[string]*member, len(ws))
	for _, k := range keys {
		g := groups[k]
		p := m.probes[k]
		if p == nil {
			c, err := m.newChecker(g[0].Spec)
			if err != nil {
				for _, w := range g {
					m.log.Error("health watch left out: cannot check", "id", w.ID,
						"service", w.Target.Service, "backend", backendOf(w.Target), "error", err)
				}
				continue
			}
			p = newProbe(g, c, now)
		}
		next[k] = p
		for _, w := range g {
			mem := &member{w: w, p: p, shared: len(g)}
			if om := old.byID[w.ID]; om != nil && om.p == p && om.w.PassiveFailures == w.PassiveFailures {
				mem.failures.Store(om.failures.Load())
			}
			members[p] = append(members[p], mem)
			byID[w.ID] = mem
		}
	}

	// Probes first lose the watches they lose, and only then gain new
	// ones: a watch that moves between two running probes hears its old
	// probe's last transition before its new probe's first.
	for k, p := range m.probes {
		p.mu.Lock()
		if next[k] == nil {
			p.removed = true
			p.members = nil
		} else {
			p.members = slices.DeleteFunc(slices.Clone(members[p]), func(mem *member) bool {
				return !slices.ContainsFunc(p.members, func(o *member) bool { return o.w.ID == mem.w.ID })
			})
		}
		p.mu.Unlock()
		if next[k] == nil && p.cancel != nil {
			p.cancel()
		}
	}
	for _, p := range next {
		p.mu.Lock()
		p.members = members[p]
		p.target = sharedTarget(members[p])
		p.mu.Unlock()
	}
	m.probes = next
	m.table.Store(&table{byID: byID})
	select {
	case m.changed <- struct{}{}:
	default: // Run has a wake-up pending already
	}
}

// probeKey identifies a probe: where the check goes and what it checks.
func probeKey(w Watch) string {
	k := w.Target.Addr.String() + " " + w.Spec.fingerprint()
	if t := Lookup(w.Spec.Type); t != nil && t.PerBackend {
		k += " " + w.Target.Backend.String() + " " + w.Target.Service
	}
	return k
}

// sharedTarget is what a probe checks: the members' common target, with
// Backend and Service cleared where they differ.
func sharedTarget(ms []*member) Target {
	t := ms[0].w.Target
	for _, mem := range ms[1:] {
		if mem.w.Target.Backend != t.Backend {
			t.Backend = netip.AddrPort{}
		}
		if mem.w.Target.Service != t.Service {
			t.Service = ""
		}
	}
	return t
}

// ReportFailure records a failure seen on real traffic for watch id
// (passive checking). It never blocks: it counts with atomics and wakes
// the probe with a signal that coalesces, so nothing is lost when many
// connections fail at once. Unknown ids and watches without passive
// checking are ignored.
func (m *Monitor) ReportFailure(id, reason string) {
	mem := m.table.Load().byID[id]
	if mem == nil || mem.w.PassiveFailures <= 0 {
		return
	}
	if mem.failures.Add(1) < int64(mem.w.PassiveFailures) {
		return
	}
	mem.tripped.Store(&reason)
	select {
	case mem.p.passive <- struct{}{}:
	default: // the probe is woken already and reads every member
	}
}

// ReportSuccess records a success on real traffic for watch id: the
// passive failure count starts again. It is called per connection, so it
// writes only when there is something to reset.
func (m *Monitor) ReportSuccess(id string) {
	mem := m.table.Load().byID[id]
	if mem != nil && mem.failures.Load() != 0 {
		mem.failures.Store(0)
	}
}

// Status returns every watch's probe state, sorted by ID.
func (m *Monitor) Status() []ProbeStatus {
	t := m.table.Load()
	out := make([]ProbeStatus, 0, len(t.byID))
	for id, mem := range t.byID {
		mem.p.stateMu.Lock()
		st := mem.p.st
		mem.p.stateMu.Unlock()
		out = append(out, ProbeStatus{
			ID:           id,
			Target:       mem.w.Target,
			Check:        mem.p.spec.Type,
			State:        st.state,
			Since:        st.since,
			LastCheck:    st.lastCheck,
			LastDuration: st.lastDuration,
			LastOK:       st.lastOK,
			LastReason:   st.lastReason,
			Checks:       st.checks,
			Failures:     st.failures,
			Flaps:        st.flaps,
			Durations:    mem.p.durations.Snapshot(),
			Shared:       mem.shared,
		})
	}
	slices.SortFunc(out, func(a, b ProbeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
