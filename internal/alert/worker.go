package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// hookState is one configured hook: its settings, counters and rate
// limit. It outlives reloads that keep the hook's name.
type hookState struct {
	key string
	cfg atomic.Pointer[Hook] // normalized; replaced by SetHooks

	sent, failed, dropped, overflow atomic.Uint64

	mu         sync.Mutex
	lastError  string
	lastFailed time.Time
	lastSent   time.Time

	// Owned by the Run goroutine.
	limit      limiter
	dropping   bool   // a drop was logged; later ones go into the summary
	unreported uint64 // drops since the last log line
}

func (st *hookState) record(err error, at time.Time) {
	if err == nil {
		st.sent.Add(1)
	} else {
		st.failed.Add(1)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err == nil {
		st.lastSent = at
		return
	}
	st.lastError, st.lastFailed = err.Error(), at
}

func (st *hookState) stats() HookStats {
	s := HookStats{
		Name:     st.cfg.Load().Name,
		Sent:     st.sent.Load(),
		Failed:   st.failed.Load(),
		Dropped:  st.dropped.Load(),
		Overflow: st.overflow.Load(),
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	s.LastError, s.LastFailed, s.LastSent = st.lastError, st.lastFailed, st.lastSent
	return s
}

// delivery is one event on its way to one hook; body is its JSON, encoded
// once for all hooks.
type delivery struct {
	ev   Event
	body []byte
}

// worker delivers one hook's events one at a time, in order.
type worker struct {
	st    *hookState
	queue chan delivery   // closed at shutdown, after the last event
	stop  chan struct{}   // closed when the hook is removed
	done  chan struct{}   // closed when the worker has returned
	after <-chan struct{} // the previous worker of the same name, or nil
}

func (d *Dispatcher) work(ctx context.Context, w *worker) {
	defer close(w.done)
	if w.after != nil {
		select {
		case <-w.after:
		case <-w.stop:
			d.discard(w, 0, "hook removed")
			// Whoever comes after this worker waits for both.
			<-w.after
			return
		}
	}
	for {
		select {
		case <-w.stop:
			d.discard(w, 0, "hook removed")
			return
		case dv, ok := <-w.queue:
			if !ok {
				return
			}
			// select picks at random among ready cases; removal and the
			// end of the drain must win over a full queue.
			select {
			case <-w.stop:
				d.discard(w, 1, "hook removed")
				return
			default:
			}
			if ctx.Err() != nil {
				d.discard(w, 1, "shutdown")
				return
			}
			d.deliver(ctx, w.st.cfg.Load(), w.st, dv)
		}
	}
}

// discard logs the events left in w's queue, plus n already taken out.
func (d *Dispatcher) discard(w *worker, n int, why string) {
	n += len(w.queue)
	if n == 0 {
		return
	}
	d.log.Warn("alert hook discarded queued events", "hook", w.st.cfg.Load().Name, "why", why, "events", n)
}

// deliver runs h's program and posts to its webhook, each within
// h.Timeout, and records the outcome: delivered only if both succeed.
func (d *Dispatcher) deliver(ctx context.Context, h *Hook, st *hookState, dv delivery) {
	start := time.Now()
	var execErr, postErr error
	var output []byte
	if len(h.Exec) > 0 {
		output, execErr = runExec(ctx, h, dv)
	}
	if h.Webhook != "" {
		postErr = d.post(ctx, h, dv.body)
	}
	err := execErr
	switch {
	case err == nil:
		err = postErr
	case postErr != nil:
		// One line, unlike errors.Join: it ends up in status tables.
		err = fmt.Errorf("%w; %w", execErr, postErr)
	}
	st.record(err, time.Now())
	level, msg := slog.LevelDebug, "alert hook delivered"
	if err != nil {
		level, msg = slog.LevelWarn, "alert hook failed"
	}
	if !d.log.Enabled(ctx, level) {
		return
	}
	ev := &dv.ev
	attrs := []any{"hook", h.Name, "kind", ev.Kind, "service", ev.Service, "backend", ev.Backend,
		"state", ev.State, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	if len(output) > 0 {
		attrs = append(attrs, "output", string(output))
	}
	d.log.Log(ctx, level, msg, attrs...)
}
