package proxy

import (
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/fulcrum-lb/fulcrum/internal/l7/poller"
)

// Reads on the HTTP/1.1 path (client connections over plain TCP and every
// backend connection) wait on a poller of fulcrum's own (package poller)
// rather than in Go's netpoller, so that requests are served in arrival
// order. Every proxy of the process shares one, started when the first
// proxy wants it and closed when the last one shuts down. It is off for a
// proxy whose Config says NoPoller, and for every proxy when PollerEnv is
// "off" (or "0", "false", "no"); where it cannot start (no epoll) or has
// stopped on an error, sockets are read through Go's netpoller, as they
// are when it is off.

// PollerEnv is the environment variable that turns the poller off for the
// whole process: FULCRUM_HTTP_POLLER=off.
const PollerEnv = "FULCRUM_HTTP_POLLER"

// PollerState tells whether a proxy's reads wait on the poller.
type PollerState uint8

const (
	PollerOff    PollerState = iota // turned off: Config.NoPoller or PollerEnv
	PollerOn                        // running
	PollerFailed                    // could not start, or stopped on an error
)

func (s PollerState) String() string {
	switch s {
	case PollerOn:
		return "on"
	case PollerFailed:
		return "failed"
	}
	return "off"
}

// pollerWanted reports whether cfg asks for the poller, PollerEnv
// permitting.
func pollerWanted(cfg *Config) bool {
	if cfg.NoPoller {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv(PollerEnv))) {
	case "off", "0", "false", "no":
		return false
	}
	return true
}

// pollers holds the poller shared by the proxies of a process and counts
// its users.
type pollers struct {
	mu    sync.Mutex
	start func(*slog.Logger) (*poller.Poller, error)
	p     *poller.Poller
	users int
}

var sharedPollers = &pollers{start: poller.Start}

// acquire returns the shared poller, starting it if need be, and counts a
// user; on error it returns why none runs.
func (ps *pollers) acquire(log *slog.Logger) (*poller.Poller, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.p == nil {
		p, err := ps.start(log)
		if err != nil {
			return nil, err
		}
		ps.p = p
	}
	if err := ps.p.Err(); err != nil {
		return nil, err // failed; closed when its last user releases it
	}
	ps.users++
	return ps.p, nil
}

// release ends a use of p, which acquire returned, and closes it after
// the last one.
func (ps *pollers) release(p *poller.Poller) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p != ps.p {
		return
	}
	if ps.users--; ps.users == 0 {
		ps.p.Close()
		ps.p = nil
	}
}

// setPoller makes the proxy's new connections use the poller or not, as
// s says, and logs when it is wanted but cannot run. Update and Shutdown
// (want false) call it.
func (p *Proxy) setPoller(s *snapshot, want bool) {
	p.pollerMu.Lock()
	defer p.pollerMu.Unlock()
	p.pollerWanted = want
	cur := p.poller.Load()
	if want == (cur != nil) {
		return
	}
	if !want {
		p.poller.Store(nil)
		p.pollers.release(cur)
		return
	}
	pl, err := p.pollers.acquire(s.log)
	if err != nil {
		p.pollerErr = err.Error()
		s.log.Warn("HTTP poller cannot run: reads wait in Go's netpoller", "error", err)
		return
	}
	p.pollerErr = ""
	p.poller.Store(pl)
}

// pollerState reports the state of the proxy's poller and, when it
// failed, why.
func (p *Proxy) pollerState() (PollerState, string) {
	p.pollerMu.Lock()
	defer p.pollerMu.Unlock()
	switch pl := p.poller.Load(); {
	case !p.pollerWanted:
		return PollerOff, ""
	case pl == nil:
		return PollerFailed, p.pollerErr
	default:
		if err := pl.Err(); err != nil {
			return PollerFailed, err.Error()
		}
		return PollerOn, ""
	}
}
