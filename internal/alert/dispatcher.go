package alert

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRunning is returned by Run when the dispatcher already runs.
var ErrRunning = errors.New("alert: dispatcher already running")

// Dispatcher delivers events to hooks. Notify, SetHooks, Stats and
// QueueDropped may be called from any goroutine, before, during and after
// Run; one Run at a time delivers.
type Dispatcher struct {
	log     *slog.Logger
	queue   chan Event
	reload  chan struct{} // one pending signal is enough: Run reads the latest table
	client  *http.Client
	drain   time.Duration
	running atomic.Bool

	setMu sync.Mutex // serializes SetHooks; readers use hooks
	hooks atomic.Pointer[[]*hookState]

	queueDropped  atomic.Uint64
	queueReported atomic.Uint64 // drops already in the log
	queueWarned   atomic.Bool   // an overflow was logged and the summary is due
}

// NewDispatcher returns a dispatcher for hooks; Run delivers. A nil log
// means slog.Default().
func NewDispatcher(log *slog.Logger, hooks []Hook) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	d := &Dispatcher{
		log:    log,
		queue:  make(chan Event, queueSize),
		reload: make(chan struct{}, 1),
		client: &http.Client{
			Transport: &http.Transport{
				Proxy: http.ProxyFromEnvironment,
				// Hooks fire rarely, so a kept-alive connection would
				// mostly sit idle; closing each after its POST also means
				// Run leaves none behind.
				DisableKeepAlives: true,
			},
			// A receiver that moved should be reconfigured, not followed:
			// 301 and 302 would turn the POST into a GET.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		drain: drainTimeout,
	}
	d.SetHooks(hooks)
	return d
}

// Notify queues ev for delivery and never blocks: when the queue is full
// the event is dropped and counted. A zero Time becomes now. Extra is
// copied.
func (d *Dispatcher) Notify(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Extra = maps.Clone(ev.Extra)
	select {
	case d.queue <- ev:
		return
	default:
	}
	total := d.queueDropped.Add(1)
	if d.queueWarned.CompareAndSwap(false, true) {
		d.queueReported.Add(1)
		d.log.Warn("alert queue full, dropping events; further drops are summed up each minute",
			"kind", ev.Kind, "service", ev.Service, "backend", ev.Backend, "state", ev.State,
			"queue", queueSize, "dropped_total", total)
	}
}

// QueueDropped counts events dropped by Notify because the queue was full.
func (d *Dispatcher) QueueDropped() uint64 { return d.queueDropped.Load() }

// SetHooks replaces the hooks. A hook that keeps its name keeps its
// counters, rate-limit budget, queue and place in line; queued events go
// out with its new settings. A removed hook finishes the delivery in
// progress and discards the rest of its queue. A hook with neither Exec
// nor Webhook is left out, with a warning. Events notified after SetHooks
// returns go to the new hooks.
func (d *Dispatcher) SetHooks(hooks []Hook) {
	d.setMu.Lock()
	defer d.setMu.Unlock()
	old := map[string]*hookState{}
	if cur := d.hooks.Load(); cur != nil {
		for _, st := range *cur {
			old[st.key] = st
		}
	}
	seen := map[string]int{}
	next := make([]*hookState, 0, len(hooks))
	for i, h := range hooks {
		h = h.normalized(i)
		if len(h.Exec) == 0 && h.Webhook == "" {
			d.log.Warn("alert hook has neither exec nor webhook, ignored", "hook", h.Name)
			continue
		}
		// Two hooks with one name still get a counter each.
		seen[h.Name]++
		key := h.Name
		if n := seen[h.Name]; n > 1 {
			key += "#" + strconv.Itoa(n)
		}
		st := old[key]
		if st == nil {
			st = &hookState{key: key}
		}
		st.cfg.Store(&h)
		next = append(next, st)
	}
	d.hooks.Store(&next)
	select {
	case d.reload <- struct{}{}:
	default:
	}
}

// Stats returns the counters of the current hooks, in configuration order.
func (d *Dispatcher) Stats() []HookStats {
	cur := d.hooks.Load()
	if cur == nil {
		return nil
	}
	out := make([]HookStats, 0, len(*cur))
	for _, st := range *cur {
		out = append(out, st.stats())
	}
	return out
}

// Run logs and delivers queued events until ctx is done. Then it hands
// on what is already queued and gives the hooks up to 2s to deliver it;
// deliveries still running after that are cancelled (programs killed).
// Run returns nil after every goroutine it started has ended, or
// ErrRunning.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	// Deliveries outlive ctx by the drain period, so they get their own
	// context.
	deliverCtx, stopDelivering := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDelivering()
	r := &run{d: d, ctx: deliverCtx, workers: map[string]*worker{}, retired: map[string]<-chan struct{}{}}
	r.reconcile()
	tick := time.NewTicker(reportEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.shutdown(stopDelivering)
			return nil
		case ev := <-d.queue:
			r.dispatch(ev)
		case <-d.reload:
			r.reconcile()
		case <-tick.C:
			r.reportDrops()
		}
	}
}

// run is the state of one Run call, owned by its goroutine.
type run struct {
	d       *Dispatcher
	ctx     context.Context // for deliveries; cancelled at the end of the drain
	table   *[]*hookState   // the published hooks the workers match
	states  []*hookState
	workers map[string]*worker
	// retired holds the done channel of removed workers by key, so a hook
	// that comes back waits for its old worker and stays in order.
	retired map[string]<-chan struct{}
	wg      sync.WaitGroup
}

// reconcile starts and stops workers to match the published hooks.
func (r *run) reconcile() {
	var states []*hookState
	r.table = r.d.hooks.Load()
	if r.table != nil {
		states = *r.table
	}
	want := make(map[string]*hookState, len(states))
	for _, st := range states {
		want[st.key] = st
	}
	for key, w := range r.workers {
		if want[key] != w.st {
			close(w.stop)
			delete(r.workers, key)
			r.retired[key] = w.done
		}
	}
	for key, done := range r.retired {
		select {
		case <-done:
			delete(r.retired, key)
		default:
		}
	}
	for _, st := range states {
		if r.workers[st.key] != nil {
			continue
		}
		w := &worker{
			st:    st,
			queue: make(chan delivery, hookQueueSize),
			stop:  make(chan struct{}),
			done:  make(chan struct{}),
			after: r.retired[st.key],
		}
		delete(r.retired, st.key)
		r.workers[st.key] = w
		r.wg.Go(func() { r.d.work(r.ctx, w) })
	}
	r.states = states
}

// dispatch queues ev for each matching hook, and logs it at Debug only:
// whoever notifies an event logs the change itself, once, at the level
// it deserves (a backend down or a lost HA peer at Warn).
func (r *run) dispatch(ev Event) {
	d := r.d
	// An event notified after SetHooks returned goes to the new hooks even
	// when select picked it before the reload signal.
	if d.hooks.Load() != r.table {
		r.reconcile()
	}
	d.log.Debug("event", "kind", ev.Kind, "service", ev.Service, "backend", ev.Backend,
		"state", ev.State, "prev_state", ev.PrevState, "reason", ev.Reason)
	body, err := json.Marshal(ev)
	if err != nil {
		// Only a Time outside years 0-9999 gets here.
		d.log.Warn("alert event cannot be encoded, not delivered", "kind", ev.Kind, "error", err)
		return
	}
	body = append(body, '\n')
	now := time.Now()
	for _, st := range r.states {
		h := st.cfg.Load()
		if !h.matches(&ev) {
			continue
		}
		if !st.limit.allow(now, h.MaxPerMinute) {
			st.dropped.Add(1)
			r.noteDrop(st, h, &ev, "rate limit")
			continue
		}
		select {
		case r.workers[st.key].queue <- delivery{ev: ev, body: body}:
		default:
			st.overflow.Add(1)
			r.noteDrop(st, h, &ev, "queue full")
		}
	}
}

// noteDrop logs the first drop of a quiet hook right away and leaves the
// rest to the next summary, so a flapping backend costs a log line a
// minute, not one per event.
func (r *run) noteDrop(st *hookState, h *Hook, ev *Event, why string) {
	if st.dropping {
		st.unreported++
		return
	}
	st.dropping = true
	r.d.log.Warn("alert hook dropping events; further drops are summed up each minute",
		"hook", h.Name, "why", why, "max_per_minute", h.MaxPerMinute,
		"kind", ev.Kind, "service", ev.Service, "backend", ev.Backend, "state", ev.State)
}

// reportDrops logs the drops since the last report. A hook or queue with
// none goes quiet again, so its next drop is logged at once.
func (r *run) reportDrops() {
	for _, st := range r.states {
		if st.unreported == 0 {
			st.dropping = false
			continue
		}
		r.d.log.Warn("alert hook dropped events", "hook", st.cfg.Load().Name,
			"dropped", st.unreported, "rate_limited_total", st.dropped.Load(), "overflow_total", st.overflow.Load())
		st.unreported = 0
	}
	d := r.d
	total, reported := d.queueDropped.Load(), d.queueReported.Load()
	if total == reported {
		d.queueWarned.Store(false)
		return
	}
	d.log.Warn("alert queue overflowed", "dropped", total-reported, "dropped_total", total)
	d.queueReported.Store(total)
}

// shutdown hands on what is queued, lets the workers deliver it for up to
// the drain period and then cancels the rest.
func (r *run) shutdown(stopDelivering context.CancelFunc) {
	d := r.d
	select {
	case <-d.reload:
		r.reconcile()
	default:
	}
	// Only what is queued now: Notify may go on forever.
	for n := len(d.queue); n > 0; n-- {
		r.dispatch(<-d.queue)
	}
	for _, w := range r.workers {
		close(w.queue)
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d.drain)
	select {
	case <-done:
	case <-t.C:
		stopDelivering()
		<-done
	}
	t.Stop()
	r.reportDrops()
}
