package admin

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"sync"
	"time"
)

// History is the body of GET /api/v1/history: the last minutes of each
// service's and each backend's rate and errors, and each HA group's state
// changes, for the dashboard's graphs. The node keeps it by sampling its
// own status every interval_ms, so it survives a reload of the page, not a
// restart of the node.
type History struct {
	IntervalMS int64 `json:"interval_ms"`
	WindowMS   int64 `json:"window_ms"`
	// Time is when this answer was made.
	Time time.Time `json:"time"`
	// Times are the ends of the intervals that the rates are measured
	// over, oldest first, in Unix milliseconds.
	Times  []int64         `json:"times"`
	Series []HistorySeries `json:"series"`
	HA     []HAHistory     `json:"ha"`
}

// HistorySeries is the rate of a service or of one of its backends, one
// value per History.Times. A value is null where it is unknown: before the
// series existed, or where its counter went back (a listener replaced by a
// reload).
type HistorySeries struct {
	// Service is the pool: the service, or SERVICE/ROUTE for a route's.
	Service string `json:"service"`
	// Backend is "" for the service's own series.
	Backend string `json:"backend,omitempty"`
	// Unit is what Rate counts: "req/s" (an http service's requests) or
	// "conn/s" (new connections; new sessions for udp).
	Unit string     `json:"unit"`
	Rate []*float64 `json:"rate"`
	// Errors per second: a service's 5xx answers (http) or its clients
	// refused for lack of a backend and its failed backend connects
	// (tcp, udp); a backend's failed requests (http) or failed connects.
	Errors []*float64 `json:"errors"`
}

// HAHistory is one HA group's state over time.
type HAHistory struct {
	Group string `json:"group"`
	State string `json:"state"`
	// FirstSeen is the first sample that had the group: its state before
	// is unknown.
	FirstSeen time.Time `json:"first_seen"`
	// Transitions are the changes seen, oldest first; the state before
	// the first one is its From.
	Transitions []HATransition `json:"transitions"`
}

// HATransition is a change of an HA group's state between two samples.
type HATransition struct {
	// Time is when the group entered To, as the group reports it.
	Time time.Time `json:"time"`
	From string    `json:"from"`
	To   string    `json:"to"`
	// Changes is how many state changes the group counted between the two
	// samples: more than 1 when it flapped faster than the sampling, and
	// then From may equal To.
	Changes uint64 `json:"changes"`
}

const (
	defaultHistoryInterval = 2 * time.Second
	defaultHistoryWindow   = 10 * time.Minute
	// maxHATransitions bounds the changes kept per group.
	maxHATransitions = 50
)

// history samples a Source and keeps the last window of samples. Its
// methods may be called concurrently.
type history struct {
	src          Source
	every        time.Duration
	max          int // samples kept
	mu           sync.Mutex
	times        []time.Time
	series       map[seriesKey]*series
	order        []seriesKey // as in the last status
	ha           map[string]*haTrack
	haOrder      []string
	lastHASample time.Time
}

type seriesKey struct{ pool, backend string }

type series struct {
	unit string
	vals []counts // aligned with history.times
}

type counts struct {
	n, errs uint64
	ok      bool
}

type haTrack struct {
	state       string
	transitions uint64
	firstSeen   time.Time
	events      []HATransition
}

func newHistory(src Source, every, window time.Duration) *history {
	if every <= 0 {
		every = defaultHistoryInterval
	}
	if window < every {
		window = defaultHistoryWindow
	}
	return &history{
		src: src, every: every, max: int(window/every) + 1,
		series: map[seriesKey]*series{}, ha: map[string]*haTrack{},
	}
}

// run samples until ctx ends.
func (h *history) run(ctx context.Context) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		h.sample(h.src.Status())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample adds one status to the history.
func (h *history) sample(st Status) {
	at := st.Time
	if at.IsZero() {
		at = time.Now()
	}
	now := map[seriesKey]counts{}
	units := map[seriesKey]string{}
	var order []seriesKey
	add := func(k seriesKey, unit string, n, errs uint64) {
		if _, dup := now[k]; dup {
			return
		}
		now[k] = counts{n: n, errs: errs, ok: true}
		units[k] = unit
		order = append(order, k)
	}
	for _, s := range st.Services {
		unit := "conn/s"
		c := s.Counters
		n, errs := c.Accepted, c.NoBackend+c.ConnectFailures
		if s.HTTP != nil {
			unit, n, errs = "req/s", s.HTTP.Requests, s.HTTP.Status5xx
		}
		add(seriesKey{pool: s.Name}, unit, n, errs)
		backend := func(pool string, b Backend) {
			if s.HTTP != nil {
				add(seriesKey{pool, b.Address}, unit, b.Requests, b.Errors)
			} else {
				add(seriesKey{pool, b.Address}, unit, b.Total, b.ConnectFailures)
			}
		}
		for _, b := range s.Backends {
			backend(s.Name, b)
		}
		for _, r := range s.Routes {
			for _, b := range r.Backends {
				backend(r.Name, b)
			}
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.times); n > 0 && !at.After(h.times[n-1]) {
		return // a clock step back: wait for time to catch up
	}
	drop := len(h.times) + 1 - h.max
	h.times = shift(h.times, drop, at)
	for k, s := range h.series {
		c, ok := now[k]
		if !ok {
			delete(h.series, k) // gone with a reload
			continue
		}
		s.unit = units[k]
		s.vals = shift(s.vals, drop, c)
	}
	for _, k := range order {
		if _, ok := h.series[k]; !ok {
			vals := make([]counts, len(h.times))
			vals[len(vals)-1] = now[k]
			h.series[k] = &series{unit: units[k], vals: vals}
		}
	}
	h.order = order
	h.sampleHA(st.HA, at)
}

// shift appends v, first dropping the oldest drop elements in place so
// that the slice never grows past its bound.
func shift[T any](s []T, drop int, v T) []T {
	if drop > 0 {
		n := copy(s, s[drop:])
		s = s[:n]
	}
	return append(s, v)
}

func (h *history) sampleHA(groups []HAGroup, at time.Time) {
	seen := map[string]bool{}
	h.haOrder = h.haOrder[:0]
	for _, g := range groups {
		if seen[g.Name] {
			continue
		}
		seen[g.Name] = true
		h.haOrder = append(h.haOrder, g.Name)
		tr := h.ha[g.Name]
		if tr == nil {
			h.ha[g.Name] = &haTrack{state: g.State, transitions: g.Transitions, firstSeen: at}
			continue
		}
		changes := g.Transitions - tr.transitions
		if g.Transitions < tr.transitions { // the group was made anew
			changes = 0
		}
		if g.State != tr.state && changes == 0 {
			changes = 1
		}
		if changes > 0 {
			when := g.Since
			if when.IsZero() || !when.After(h.lastHASample) || when.After(at) {
				when = at
			}
			tr.events = shift(tr.events, len(tr.events)+1-maxHATransitions,
				HATransition{Time: when, From: tr.state, To: g.State, Changes: changes})
		}
		tr.state, tr.transitions = g.State, g.Transitions
	}
	for name := range h.ha {
		if !seen[name] {
			delete(h.ha, name)
		}
	}
	h.lastHASample = at
}

// snapshot returns the history as the API shows it.
func (h *history) snapshot() History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := History{
		IntervalMS: h.every.Milliseconds(),
		WindowMS:   (time.Duration(h.max-1) * h.every).Milliseconds(),
		Time:       time.Now(),
		Times:      []int64{},
		Series:     []HistorySeries{},
		HA:         []HAHistory{},
	}
	for i := 1; i < len(h.times); i++ {
		out.Times = append(out.Times, h.times[i].UnixMilli())
	}
	for _, k := range h.order {
		s := h.series[k]
		hs := HistorySeries{Service: k.pool, Backend: k.backend, Unit: s.unit,
			Rate: make([]*float64, len(out.Times)), Errors: make([]*float64, len(out.Times))}
		for i := 1; i < len(h.times); i++ {
			a, b := s.vals[i-1], s.vals[i]
			dt := h.times[i].Sub(h.times[i-1]).Seconds()
			if !a.ok || !b.ok || dt <= 0 {
				continue
			}
			hs.Rate[i-1] = perSecond(a.n, b.n, dt)
			hs.Errors[i-1] = perSecond(a.errs, b.errs, dt)
		}
		out.Series = append(out.Series, hs)
	}
	for _, name := range h.haOrder {
		tr := h.ha[name]
		out.HA = append(out.HA, HAHistory{Group: name, State: tr.state, FirstSeen: tr.firstSeen,
			Transitions: append([]HATransition{}, tr.events...)})
	}
	return out
}

// perSecond is the rate of a counter from a to b over dt seconds, rounded
// to a thousandth; nil when the counter went back.
func perSecond(a, b uint64, dt float64) *float64 {
	if b < a {
		return nil
	}
	r := math.Round(float64(b-a)/dt*1000) / 1000
	return &r
}

func (s *Server) history(w http.ResponseWriter, _ *http.Request) {
	// Compact: the arrays hold hundreds of numbers.
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.hist.snapshot())
}
