// Package connset keeps a proxy's listeners and open connections, so that
// its Shutdown can stop accepting, act on the connections left and wait
// until the last one is gone. The TCP and the HTTP proxies share it.
//
// The lock is taken when a listener or a connection comes and goes and by
// Close and Each; Closing is lock-free, for per-request paths.
package connset

import (
	"net"
	"sync"
	"sync/atomic"
)

// Set is the listeners and connections of one proxy. Make it with New.
type Set[C comparable] struct {
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[C]struct{}
	closing   atomic.Bool
	drained   chan struct{} // closed once closing and conns is empty
}

// New returns an empty, open set.
func New[C comparable]() *Set[C] {
	return &Set[C]{
		listeners: map[net.Listener]struct{}{},
		conns:     map[C]struct{}{},
		drained:   make(chan struct{}),
	}
}

// AddListener registers ln, for Close to close it, or reports false once
// the set is closing.
func (s *Set[C]) AddListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

// RemoveListener forgets ln.
func (s *Set[C]) RemoveListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// Add registers c, or refuses it once the set is closing: a connection
// that raced with its listener's close is not served.
func (s *Set[C]) Add(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Remove forgets c; the last connection removed after Close drains the
// set.
func (s *Set[C]) Remove(c C) {
	s.mu.Lock()
	delete(s.conns, c)
	s.checkDrainedLocked()
	s.mu.Unlock()
}

// Closing reports whether Close was called.
func (s *Set[C]) Closing() bool { return s.closing.Load() }

// Close marks the set closing, closes every listener and calls fn (if not
// nil) on each connection, all under the set's lock. Marking comes first,
// so a connection that checks Closing after changing its own state is
// seen by fn or sees the mark.
func (s *Set[C]) Close(fn func(C)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	if fn != nil {
		for c := range s.conns {
			fn(c)
		}
	}
	s.checkDrainedLocked()
}

// Each calls fn on each connection under the set's lock and returns how
// many there were; fn must not call back into the set.
func (s *Set[C]) Each(fn func(C)) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		fn(c)
	}
	return len(s.conns)
}

// Drained is closed once the set is closing and holds no connection.
func (s *Set[C]) Drained() <-chan struct{} { return s.drained }

func (s *Set[C]) checkDrainedLocked() {
	if !s.closing.Load() || len(s.conns) > 0 {
		return
	}
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}
