package l4

import "sync/atomic"

// Stats are a proxy's totals since it was created; they survive Update.
type Stats struct {
	// Accepted counts TCP connections accepted, or UDP sessions created.
	Accepted uint64
	// Active is the number of TCP connections open (from accept to close,
	// handshake included), or of UDP sessions live.
	Active int64
	// NoBackend counts TCP connections closed without reaching a backend,
	// because none was available or every connect attempt failed, and UDP
	// datagrams from a new client that found no backend.
	NoBackend uint64
	// Refused counts the part of NoBackend that found no usable backend
	// at all on arrival: every primary and backup down, disabled or full,
	// and the fallback down or absent.
	Refused uint64
	// ConnectFailures counts failed connect attempts; a retried connection
	// counts once per failed attempt.
	ConnectFailures uint64
	// ProxyHeaderErrors counts TCP connections closed because the inbound
	// PROXY header was malformed, missing or late.
	ProxyHeaderErrors uint64
	// Dropped counts UDP datagrams from new clients refused because the
	// proxy was shutting down.
	Dropped uint64
	// Evicted counts UDP sessions ended to make room for a new client in
	// a full session table (max_sessions).
	Evicted uint64
	// EvictedPerClient counts UDP sessions ended because their client
	// address opened another beyond max_sessions_per_client.
	EvictedPerClient uint64
	// SendErrors counts UDP datagrams that could not be sent to a backend
	// or back to a client.
	SendErrors uint64
	// IdleTimeouts counts TCP connections and UDP sessions closed by the
	// idle timeout.
	IdleTimeouts uint64
}

// counters are the live Stats, updated with atomics from any goroutine.
type counters struct {
	accepted          atomic.Uint64
	active            atomic.Int64
	noBackend         atomic.Uint64
	refused           atomic.Uint64
	connectFailures   atomic.Uint64
	proxyHeaderErrors atomic.Uint64
	dropped           atomic.Uint64
	evicted           atomic.Uint64
	evictedPerClient  atomic.Uint64
	sendErrors        atomic.Uint64
	idleTimeouts      atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Accepted:          c.accepted.Load(),
		Active:            c.active.Load(),
		NoBackend:         c.noBackend.Load(),
		Refused:           c.refused.Load(),
		ConnectFailures:   c.connectFailures.Load(),
		ProxyHeaderErrors: c.proxyHeaderErrors.Load(),
		Dropped:           c.dropped.Load(),
		Evicted:           c.evicted.Load(),
		EvictedPerClient:  c.evictedPerClient.Load(),
		SendErrors:        c.sendErrors.Load(),
		IdleTimeouts:      c.idleTimeouts.Load(),
	}
}
