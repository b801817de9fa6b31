// Package alert runs configured hooks on every event fulcrum reports: a
// backend going up or down, an HA group changing state. It plays the part of
// mon's alert/upalert scripts (lvs.alert) and keepalived's notify scripts.
//
// A Dispatcher logs each event once and hands it to every hook whose
// filters match. A hook runs a program, POSTs the event to a webhook, or
// both. Each hook has its own worker goroutine and bounded queue, so a slow
// or hanging hook delays only itself, and its events arrive one at a time
// and in order. Nothing on the way blocks the sender: an event that does
// not fit a queue or exceeds a hook's rate limit is dropped, counted, and
// reported in the log at most about once a minute.
package alert

import (
	"slices"
	"strconv"
	"time"
)

// Event is one thing that happened. Kinds: "backend" (health transition)
// and "ha" (VRRP state change).
type Event struct {
	Kind      string            `json:"kind"`
	Service   string            `json:"service,omitempty"`
	Backend   string            `json:"backend,omitempty"` // ip:port
	State     string            `json:"state"`             // e.g. "up", "down"
	PrevState string            `json:"prev_state"`
	Reason    string            `json:"reason,omitempty"`
	Node      string            `json:"node,omitempty"`
	Time      time.Time         `json:"time"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// Hook is one configured destination for events.
type Hook struct {
	// Name identifies the hook in logs and Stats. Empty becomes hook-N (N
	// its index). Counters survive a reload that keeps the name.
	Name string
	// Exec is the argv of a program run once per event. It gets only PATH
	// from fulcrum's environment, plus FULCRUM_EVENT (the kind),
	// FULCRUM_SERVICE, FULCRUM_BACKEND, FULCRUM_BACKEND_HOST,
	// FULCRUM_BACKEND_PORT, FULCRUM_STATE, FULCRUM_PREV_STATE,
	// FULCRUM_REASON, FULCRUM_NODE, FULCRUM_TIME (RFC 3339) and
	// FULCRUM_<KEY> for each Extra key (upper-cased, other characters than
	// letters and digits turned into _). The event JSON is on its standard
	// input. A non-zero exit fails the delivery.
	Exec []string
	// Webhook is a URL that receives the event JSON in a POST. A 2xx
	// answer is a delivery; anything else, redirects included, fails it.
	// Failed deliveries are not retried: the hook's next event carries the
	// state that matters, and retrying would delay it.
	Webhook string
	// Timeout bounds each delivery (the program and the POST each); 0
	// means 10s. A program still running then is killed with its whole
	// process group.
	Timeout time.Duration
	// Kinds limits the hook to these kinds of event; empty means all.
	Kinds []string
	// Services limits the hook to events about these services; empty
	// means all. With a list, events about no service (HA) do not match.
	Services []string
	// MaxPerMinute rate-limits the hook with a token bucket that holds
	// MaxPerMinute tokens and refills at MaxPerMinute a minute; 0 means
	// 60. Events beyond it are dropped and counted.
	MaxPerMinute int
}

// HookStats counts what happened to one hook's events.
type HookStats struct {
	Name string `json:"name"`
	// Sent counts delivered events; Failed, events whose delivery failed.
	Sent   uint64 `json:"sent"`
	Failed uint64 `json:"failed"`
	// Dropped counts events over the rate limit.
	Dropped uint64 `json:"dropped"`
	// Overflow counts events dropped because the hook's queue was full:
	// the hook is slower than the events.
	Overflow   uint64    `json:"overflow"`
	LastError  string    `json:"last_error,omitempty"`
	LastFailed time.Time `json:"last_failed,omitzero"`
	LastSent   time.Time `json:"last_sent,omitzero"`
}

const (
	defaultTimeout   = 10 * time.Second
	defaultPerMinute = 60

	// queueSize holds a burst of transitions (a whole pool flapping at
	// once) between Notify and the dispatcher goroutine.
	queueSize = 1024
	// hookQueueSize is per hook: at the default 60 a minute the rate limit
	// lets at most 60 events through at once, so this is slack for hooks
	// configured with higher limits.
	hookQueueSize = 256
	// outputLimit caps the program output kept for the log.
	outputLimit = 4 << 10
	// drainTimeout bounds delivering what is queued at shutdown.
	drainTimeout = 2 * time.Second
	// reportEvery is how often drops are summed up in the log.
	reportEvery = time.Minute
)

// normalized returns a copy of h with defaults applied and its slices
// copied, so the caller may reuse them.
func (h Hook) normalized(i int) Hook {
	if h.Name == "" {
		h.Name = "hook-" + strconv.Itoa(i)
	}
	if h.Timeout <= 0 {
		h.Timeout = defaultTimeout
	}
	if h.MaxPerMinute <= 0 {
		h.MaxPerMinute = defaultPerMinute
	}
	h.Exec = slices.Clone(h.Exec)
	h.Kinds = slices.Clone(h.Kinds)
	h.Services = slices.Clone(h.Services)
	return h
}

// matches reports whether ev passes h's filters.
func (h *Hook) matches(ev *Event) bool {
	if len(h.Kinds) > 0 && !slices.Contains(h.Kinds, ev.Kind) {
		return false
	}
	if len(h.Services) > 0 && !slices.Contains(h.Services, ev.Service) {
		return false
	}
	return true
}
