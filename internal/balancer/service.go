package balancer

import (
	"errors"
	"net/netip"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// ErrNoBackend is returned by Pick when no backend, backup or fallback can
// take the connection.
var ErrNoBackend = errors.New("no backend available")

// Service is an immutable snapshot of one virtual service: its pools, its
// scheduler and the settings the data plane needs. A reload builds a new
// Service (reusing the *Backend values and the persistence table) and the
// listener swaps it in atomically.
type Service struct {
	Name     string
	Protocol string
	Listen   netip.AddrPort

	// Settings the data plane reads, copied out of the config.
	ConnectTimeout     time.Duration
	IdleTimeout        time.Duration
	ProxyHeaderTimeout time.Duration
	Retries            int
	SendProxy          string // "", "v1", "v2"
	AcceptProxy        bool
	MaxSessions        int
	// MaxPerClient bounds the UDP sessions of one client address.
	MaxPerClient int
	// HashPort: hashing schedulers hash the client's port with its
	// address (IPVS sh-port, mh-port); PickFlow honours it.
	HashPort bool
	// Quiescent: a backend that is down keeps its connections (true) or
	// loses them (false: TCP after a grace period, UDP sessions at once).
	Quiescent bool

	Scheduler string
	primary   pool
	backup    pool
	fallback  *Backend
	persist   *Persistence
}

type pool struct {
	backends []*Backend
	sched    sched.Scheduler
}

func newPool(algo string, bs []*Backend) (pool, error) {
	view := make([]sched.Backend, len(bs))
	for i, b := range bs {
		view[i] = b
	}
	s, err := sched.New(algo, view)
	if err != nil {
		return pool{}, err
	}
	return pool{backends: bs, sched: s}, nil
}

// ServiceSpec is what NewService needs besides the backends.
type ServiceSpec struct {
	Name, Protocol, Scheduler string
	Listen                    netip.AddrPort
	ConnectTimeout            time.Duration
	IdleTimeout               time.Duration
	ProxyHeaderTimeout        time.Duration
	Retries                   int
	SendProxy                 string
	AcceptProxy               bool
	MaxSessions               int
	MaxPerClient              int
	HashPort                  bool
	Quiescent                 bool
}

// NewService assembles a service snapshot. fallback and persist may be nil.
func NewService(spec ServiceSpec, primary, backup []*Backend, fallback *Backend, persist *Persistence) (*Service, error) {
	p, err := newPool(spec.Scheduler, primary)
	if err != nil {
		return nil, err
	}
	b, err := newPool(spec.Scheduler, backup)
	if err != nil {
		return nil, err
	}
	return &Service{
		Name:               spec.Name,
		Protocol:           spec.Protocol,
		Listen:             spec.Listen,
		ConnectTimeout:     spec.ConnectTimeout,
		IdleTimeout:        spec.IdleTimeout,
		ProxyHeaderTimeout: spec.ProxyHeaderTimeout,
		Retries:            spec.Retries,
		SendProxy:          spec.SendProxy,
		AcceptProxy:        spec.AcceptProxy,
		MaxSessions:        spec.MaxSessions,
		MaxPerClient:       spec.MaxPerClient,
		HashPort:           spec.HashPort,
		Quiescent:          spec.Quiescent,
		Scheduler:          spec.Scheduler,
		primary:            p,
		backup:             b,
		fallback:           fallback,
		persist:            persist,
	}, nil
}

// Primary returns the primary backends (read-only).
func (s *Service) Primary() []*Backend { return s.primary.backends }

// Owns reports whether b is one of s's backends (primary, backup or
// fallback).
func (s *Service) Owns(b *Backend) bool { return s.owns(b) || b == s.fallback }

// Backup returns the backup backends (read-only).
func (s *Service) Backup() []*Backend { return s.backup.backends }

// Fallback returns the sorry server, or nil.
func (s *Service) Fallback() *Backend { return s.fallback }

// Persistence returns the persistence table, or nil.
func (s *Service) Persistence() *Persistence { return s.persist }

// Tried records the backends a connection already failed to reach, so a
// retry goes elsewhere. The zero value is empty; it never allocates.
type Tried struct {
	n int
	b [8]*Backend
}

// Add records b. Beyond eight entries the oldest is forgotten.
func (t *Tried) Add(b *Backend) {
	t.b[t.n%len(t.b)] = b
	t.n++
}

// Has reports whether b was recorded.
func (t *Tried) Has(b *Backend) bool {
	for i := 0; i < t.n && i < len(t.b); i++ {
		if t.b[i] == b {
			return true
		}
	}
	return false
}

// Len is the number of attempts recorded.
func (t *Tried) Len() int { return t.n }

// Pick chooses a backend for a new connection from client to dest,
// skipping backends in tried. The order is: the persistent backend of the
// client while it is available, the scheduler's choice among primaries,
// then among backups, then the fallback.
func (s *Service) Pick(client, dest netip.Addr, tried *Tried) (*Backend, error) {
	return s.pick(client, sched.Key{Source: sched.HashAddr(client), Dest: sched.HashAddr(dest)}, tried)
}

// PickFlow is Pick for an L4 flow from client (address and port): with
// HashPort the hashing schedulers hash the port too, so one address's
// flows spread over the backends. Persistence still keys on the address.
func (s *Service) PickFlow(client netip.AddrPort, dest netip.Addr, tried *Tried) (*Backend, error) {
	addr := client.Addr().Unmap()
	k := sched.Key{Source: sched.HashAddr(addr), Dest: sched.HashAddr(dest)}
	if s.HashPort {
		k.Source = sched.HashAddrPort(netip.AddrPortFrom(addr, client.Port()))
	}
	return s.pick(addr, k, tried)
}

func (s *Service) pick(client netip.Addr, k sched.Key, tried *Tried) (*Backend, error) {
	if s.persist != nil {
		if b := s.persist.Lookup(client); b != nil && b.Available() && !tried.Has(b) && s.owns(b) {
			return b, nil
		}
	}
	b := s.primary.pick(k, tried)
	if b == nil {
		b = s.backup.pick(k, tried)
	}
	if b == nil {
		// The sorry server is health-checked like a backend: one that is
		// down would only turn a refusal into a failed connect.
		if s.fallback == nil || tried.Has(s.fallback) || !s.fallback.Available() {
			return nil, ErrNoBackend
		}
		// The sorry server is never remembered by persistence: clients go
		// back to real backends as soon as one returns.
		return s.fallback, nil
	}
	if s.persist != nil {
		s.persist.Store(client, b)
	}
	return b, nil
}

func (p *pool) pick(k sched.Key, tried *Tried) *Backend {
	if len(p.backends) == 0 {
		return nil
	}
	i := p.sched.Pick(k)
	if i < 0 {
		return nil
	}
	if b := p.backends[i]; !tried.Has(b) {
		return b
	}
	// Hash-based schedulers return the same backend again for the same key;
	// walk on from it to the next available one not yet tried.
	n := len(p.backends)
	for j := 1; j < n; j++ {
		b := p.backends[(i+j)%n]
		if b.Available() && !tried.Has(b) {
			return b
		}
	}
	return nil
}

// owns reports whether b still belongs to s (a persistence entry may
// outlive a backend removed by reload).
func (s *Service) owns(b *Backend) bool {
	for _, x := range s.primary.backends {
		if x == b {
			return true
		}
	}
	for _, x := range s.backup.backends {
		if x == b {
			return true
		}
	}
	return false
}
