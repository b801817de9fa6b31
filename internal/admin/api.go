// Package admin serves fulcrum's HTTP API on the admin listener (loopback
// by default): the JSON status that `fulcrum status` renders, the recent
// history of rates and HA changes that the dashboard draws (history.go),
// and the client the CLI uses to read the status.
package admin

import "time"

// Status is the body of GET /api/v1/status. Field names are part of the
// API: add, never rename.
type Status struct {
	Node       string    `json:"node"`
	Version    string    `json:"version"`
	ConfigFile string    `json:"config_file"`
	ConfigHash string    `json:"config_hash"`
	Started    time.Time `json:"started"`
	Reloads    Reloads   `json:"reloads"`
	Services   []Service `json:"services"`
	Alerts     Alerts    `json:"alerts"`
	HA         []HAGroup `json:"ha"`
	// AccessLogs are the access-log destinations open, by path.
	AccessLogs []AccessLog `json:"access_logs,omitempty"`
	// Director is the kernel data plane of the services with forwarding
	// direct or tunnel; nil while no service has.
	Director *Director `json:"director,omitempty"`

	// Time is when this status was taken: rates are computed between two
	// of them.
	Time time.Time `json:"time"`
}

// Director is the kernel data plane (docs/director.md).
type Director struct {
	// Interfaces the XDP program is attached to, with the mode it got:
	// native (in the driver) or generic.
	Interfaces []DirectorInterface `json:"interfaces"`
	// FlowEntries are the flows that saw a packet within flow_timeout.
	FlowEntries int64 `json:"flow_entries"`
	// Counters are the program's own, by reason: tx and redirect
	// (forwarded), passed_* (left to the kernel's stack: fragment,
	// no_service, no_backend, unknown, ...), dropped_malformed, icmp,
	// events_lost, ...
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Services and Slots (backends of services) programmed.
	Services int `json:"services"`
	Slots    int `json:"slots"`
	// Error is set when the kernel's counters could not be read.
	Error string `json:"error,omitempty"`
	// Sync is the flow sync with the other directors; nil while
	// director.sync.listen is not set.
	Sync *DirectorSync `json:"sync,omitempty"`
}

// DirectorSync is the flow sync (docs/director.md, "Flow sync").
type DirectorSync struct {
	// Listen is the bound UDP address.
	Listen string `json:"listen"`
	// Entries sent (once per peer), received and installed into the
	// kernel's tables.
	Sent      uint64 `json:"sent"`
	Received  uint64 `json:"received"`
	Installed uint64 `json:"installed"`
	// Datagrams sent and accepted.
	DatagramsSent     uint64 `json:"datagrams_sent"`
	DatagramsReceived uint64 `json:"datagrams_received"`
	// Queued entries wait to be sent (rate limit).
	Queued int `json:"queued"`
	// Dumps counts the tables sent to joining peers.
	Dumps uint64 `json:"dumps"`
	// Dropped counts by reason: rate, send (entries not sent); auth,
	// replay, malformed, not_peer (datagrams); unknown_service,
	// unknown_backend, install (entries received but not installed).
	Dropped map[string]uint64  `json:"dropped,omitempty"`
	Peers   []DirectorSyncPeer `json:"peers"`
	// Feed is the kernel's feed of new flows the sync reads: "running",
	// or "restarting" after it failed (read again at FeedRetryAt, after
	// 1 s, doubling up to 30 s while it keeps failing). FeedFailures
	// counts its failures; FeedError and FeedLastFailure are the last
	// one's, kept once it runs again. Flows created while it is down are
	// not sent when created.
	Feed            string    `json:"feed"`
	FeedFailures    uint64    `json:"feed_failures"`
	FeedError       string    `json:"feed_error,omitempty"`
	FeedLastFailure time.Time `json:"feed_last_failure,omitzero"`
	FeedRetryAt     time.Time `json:"feed_retry_at,omitzero"`
}

// DirectorSyncPeer is one of director.sync.peers.
type DirectorSyncPeer struct {
	Address string `json:"address"`
	// Node is the name its datagrams carry; "" until one arrived.
	Node string `json:"node,omitempty"`
	// LastHeard is when its last accepted datagram arrived.
	LastHeard time.Time `json:"last_heard,omitzero"`
	// Joined is when its table, asked for at start, was complete.
	Joined    time.Time `json:"joined,omitzero"`
	Datagrams uint64    `json:"datagrams"`
	Entries   uint64    `json:"entries"`
}

// DirectorInterface is one interface the director's program runs on.
type DirectorInterface struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // native or generic
}

// DirectorCounters are what the kernel counted of a service, or of one
// backend of it, with forwarding direct or tunnel: packets and bytes
// from clients (the replies bypass the director), flows created and, for
// a backend, flows alive now.
type DirectorCounters struct {
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	NewFlows    uint64 `json:"new_flows"`
	ActiveFlows int64  `json:"active_flows"`
	// NotForwarded, for a backend, is why the director leaves it out of
	// its ring whatever its health and admin state: the way to it is not
	// known (no route; a route through a router, for direct routing; no
	// neighbour entry yet; no tunnel source of its family) or its slot
	// could not be written into the kernel. "" while the director
	// forwards to it.
	NotForwarded string `json:"not_forwarded,omitempty"`
}

// HAGroup is one VRRP group on this node.
type HAGroup struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	VRID      int      `json:"vrid"`
	VIPs      []string `json:"vips"`
	// State is "init", "backup", "master" or "fault"; Since is when it
	// got there.
	State              string    `json:"state"`
	Since              time.Time `json:"since,omitzero"`
	Priority           int       `json:"priority"` // effective, after tracking
	ConfiguredPriority int       `json:"configured_priority"`
	Preempt            bool      `json:"preempt"`
	// Master is this node's address when master, else the master last
	// heard, with what it advertised.
	Master           string            `json:"master,omitempty"`
	MasterPriority   int               `json:"master_priority,omitempty"`
	MasterIntervalMS float64           `json:"master_interval_ms,omitempty"`
	Transitions      uint64            `json:"transitions"`
	AdvertsSent      uint64            `json:"adverts_sent"`
	AdvertsReceived  uint64            `json:"adverts_received"`
	Dropped          map[string]uint64 `json:"dropped,omitempty"`
	Track            []TrackItem       `json:"track,omitempty"`

	SendErrors uint64 `json:"send_errors"`
	// VIPsHeld is how many of VIPs this node holds: all on a master, none
	// on a backup once a hand-over is complete.
	VIPsHeld int `json:"vips_held"`
	// ListenUntil is set while a starting backup that has heard no master
	// yet listens for one (ha.groups[].initdead): it takes the VIPs then,
	// unless it hears a master first.
	ListenUntil time.Time `json:"listen_until,omitzero"`
	// ReleasedAt is set while `fulcrum ha release` holds this node back:
	// it does not preempt until the new master fails or `fulcrum ha
	// reclaim` undoes the release.
	ReleasedAt time.Time `json:"released_at,omitzero"`
	// PreemptHeld is set while this backup leaves a live master it
	// outranks in place, and says why ("waiting for the flow table of
	// lb2": a returning director takes the VIPs back only once it has
	// its peers' flows); PreemptHoldUntil is when the hold ends at the
	// latest.
	PreemptHeld      string    `json:"preempt_held,omitempty"`
	PreemptHoldUntil time.Time `json:"preempt_hold_until,omitzero"`
	// Peers are the other nodes heard on the link, by address.
	Peers []HAPeer `json:"peers,omitempty"`
	// HellosSent and HelloDropped count this group's hellos (0/nil when
	// ha.hello_port is 0); dropped by reason: auth (unauthenticated or
	// forged), stale (replayed, or a clock off by more than 30s),
	// not_peer (not in unicast_peers), vrid (the group's name with
	// another VRID), malformed (no hello at all) and unknown_group (a
	// hello for a group this node does not have); the last two name no
	// group, and every group of the family that received them counts them.
	HellosSent   uint64            `json:"hellos_sent,omitempty"`
	HelloDropped map[string]uint64 `json:"hello_dropped,omitempty"`
}

// HAPeer is another node heard advertising for a group.
type HAPeer struct {
	Address string `json:"address"`
	// Priority is from its last advert, or its last hello when that is
	// newer; priority 0 means it was leaving. IntervalMS and LastHeard
	// are from its last advert (zero if it never sent one: only a master
	// advertises).
	Priority   int       `json:"priority"`
	IntervalMS float64   `json:"interval_ms"`
	LastHeard  time.Time `json:"last_heard,omitzero"`
	Adverts    uint64    `json:"adverts"`
	// ConfigHash is the first 16 hex digits of the peer's config hash,
	// from its hellos or its authenticated adverts; "" while unknown.
	// Compare with Status.ConfigHash.
	ConfigHash string `json:"config_hash,omitempty"`
	// From the peer's hellos (docs/ha.md, "Hello"), when it sends them:
	// its node name, VRRP state, how many hellos and the last one's time.
	// Its ConfigHash then comes from them, in both directions and without
	// auth_key_file too.
	Node      string    `json:"node,omitempty"`
	State     string    `json:"state,omitempty"`
	Hellos    uint64    `json:"hellos,omitempty"`
	LastHello time.Time `json:"last_hello,omitzero"`
	// Gone is set for a peer heard before and silent since: no hello for
	// 5s and no advert for three of its intervals. The group has lost
	// that redundancy (logged at Warn when it went).
	Gone bool `json:"gone,omitempty"`
}

// TrackItem is one thing an HA group tracks.
type TrackItem struct {
	Kind   string `json:"kind"` // service, interface, script, ping
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Weight int    `json:"weight"` // 0: fault when failed
	Detail string `json:"detail,omitempty"`
}

// AccessLog is one access-log destination (a file or stderr) shared by
// the http services logging there.
type AccessLog struct {
	Path  string `json:"path"`
	Lines uint64 `json:"lines"` // queued for writing
	// WriteErrors counts failed writes (a full disk); each loses the
	// LinesLost lines it carried.
	WriteErrors uint64    `json:"write_errors"`
	LinesLost   uint64    `json:"lines_lost"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Alerts reports the alert hooks' deliveries.
type Alerts struct {
	// QueueDropped counts events lost because the dispatcher's queue was
	// full.
	QueueDropped uint64      `json:"queue_dropped"`
	Hooks        []AlertHook `json:"hooks"`
}

// AlertHook is one configured hook's record.
type AlertHook struct {
	Name      string    `json:"name"`
	Sent      uint64    `json:"sent"`
	Failed    uint64    `json:"failed"`
	Dropped   uint64    `json:"dropped"`  // over max_per_minute
	Overflow  uint64    `json:"overflow"` // its own queue was full
	LastError string    `json:"last_error,omitempty"`
	LastSent  time.Time `json:"last_sent,omitzero"`
}

// Reloads reports configuration reloads since start.
type Reloads struct {
	OK        uint64    `json:"ok"`
	Failed    uint64    `json:"failed"`
	Last      time.Time `json:"last,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Service is one virtual service.
type Service struct {
	Name      string `json:"name"`
	Protocol  string `json:"protocol"`
	Listen    string `json:"listen"`
	Scheduler string `json:"scheduler"`
	// Forwarding is proxy, direct or tunnel.
	Forwarding  string       `json:"forwarding,omitempty"`
	Persistence *Persistence `json:"persistence,omitempty"`
	Counters    Counters     `json:"counters"`
	// Director are the kernel's counters of a service with forwarding
	// direct or tunnel (Counters stay 0: no connection reaches fulcrum).
	Director *DirectorCounters `json:"director,omitempty"`
	Backends []Backend         `json:"backends"`
	// HTTP are an http service's request counters; nil for tcp and udp.
	HTTP *HTTPCounters `json:"http,omitempty"`
	// Routes are an http service's route pools, in match order; requests
	// matching none go to Backends.
	Routes []Route `json:"routes,omitempty"`
	// Removed lists the file's backends removed at runtime (until the
	// next reload).
	Removed []string `json:"removed,omitempty"`
}

// HTTPCounters are an http service's totals since its listener started.
type HTTPCounters struct {
	Requests uint64 `json:"requests"`
	// BadRequests were answered 4xx by the proxy itself (malformed,
	// over a limit, too slow) and never forwarded.
	BadRequests uint64 `json:"bad_requests"`
	// Responses by status class, as sent to clients: 1xx .. 5xx.
	Status1xx uint64 `json:"status_1xx"`
	Status2xx uint64 `json:"status_2xx"`
	Status3xx uint64 `json:"status_3xx"`
	Status4xx uint64 `json:"status_4xx"`
	Status5xx uint64 `json:"status_5xx"`
	// UpstreamConnects opened a backend connection; UpstreamReuses sent a
	// request on a pooled one.
	UpstreamConnects uint64 `json:"upstream_connects"`
	UpstreamReuses   uint64 `json:"upstream_reuses"`
	// Aborted responses were cut short after their head was sent (the
	// backend died mid-body, the client stopped reading).
	Aborted uint64 `json:"aborted"`
	// Poller is "on" when the service's HTTP/1.1 reads wait on fulcrum's
	// poller, "off" when http.poller or FULCRUM_HTTP_POLLER turned it off,
	// "failed" when it could not start or stopped on an error (PollerError
	// says why): reads then wait in Go's netpoller.
	Poller      string `json:"poller,omitempty"`
	PollerError string `json:"poller_error,omitempty"`
}

// Route is one routing rule of an http service and its pool, named
// SERVICE/ROUTE.
type Route struct {
	Name        string       `json:"name"`
	Host        string       `json:"host,omitempty"`
	PathPrefix  string       `json:"path_prefix,omitempty"`
	Scheduler   string       `json:"scheduler"`
	Persistence *Persistence `json:"persistence,omitempty"`
	Backends    []Backend    `json:"backends"`
}

// Persistence describes a service's client → backend table.
type Persistence struct {
	TimeoutSeconds float64 `json:"timeout_seconds"`
	Entries        int     `json:"entries"`
}

// Counters are a frontend's totals since start (they survive reloads while
// the listener stays).
type Counters struct {
	Accepted  uint64 `json:"accepted"`
	Active    int64  `json:"active"`
	NoBackend uint64 `json:"no_backend"`
	// Refused clients found no usable backend on arrival (all down,
	// disabled or full, the fallback down or absent): TCP connections and
	// UDP datagrams of new clients (both also in NoBackend), and HTTP
	// requests answered 503.
	Refused          uint64 `json:"refused"`
	ConnectFailures  uint64 `json:"connect_failures"`
	ProxyHeaderError uint64 `json:"proxy_header_errors,omitempty"`
	Dropped          uint64 `json:"dropped,omitempty"`
	// Evicted and EvictedPerClient count UDP sessions ended to make room
	// for a new one: the table was at max_sessions, or the client address
	// at max_sessions_per_client.
	Evicted          uint64 `json:"evicted,omitempty"`
	EvictedPerClient uint64 `json:"evicted_per_client,omitempty"`
	SendErrors       uint64 `json:"send_errors,omitempty"`
	IdleTimeouts     uint64 `json:"idle_timeouts"`
}

// Roles a backend can have in a service.
const (
	RolePrimary  = "primary"
	RoleBackup   = "backup"
	RoleFallback = "fallback"
)

// Backend is one real server of a service.
type Backend struct {
	Address        string `json:"address"`
	Role           string `json:"role"`
	Weight         int    `json:"weight"`
	MaxConnections int    `json:"max_connections"`
	Healthy        bool   `json:"healthy"`
	Available      bool   `json:"available"`
	// AdminState is the operator's decision: "ready", "drain" (no new
	// connections, established ones continue) or "maint" (no traffic;
	// established connections go as from a backend that is down). Health
	// checks run in every state.
	AdminState string `json:"admin_state"`
	// AdminSetOn is the node where the backend's admin state was last set
	// at runtime (this node or an HA peer, see docs/operations.md), ""
	// when no runtime change was made. On a node with HA groups
	// AdminScope is then "peers" when every peer that says hello has the
	// same state, "node" when it is this node's alone (no peer, a peer
	// without the hello, or one that has not taken it).
	AdminSetOn string `json:"admin_set_on,omitempty"`
	AdminScope string `json:"admin_scope,omitempty"`
	// Runtime says how the backend differs from the config file, until
	// the next reload: "added" at runtime, or its "weight" set at
	// runtime; "" when it is as in the file.
	Runtime         string `json:"runtime,omitempty"`
	Active          int64  `json:"active"`
	Total           uint64 `json:"total"`
	ConnectFailures uint64 `json:"connect_failures"`
	BytesIn         uint64 `json:"bytes_in"`
	BytesOut        uint64 `json:"bytes_out"`
	// SlowStart is true while the weight ramps up after a recovery.
	SlowStart bool `json:"slow_start,omitempty"`
	// Health is nil when the backend has no health check.
	Health *Health `json:"health,omitempty"`
	// Director are the kernel's counters of the backend of a service with
	// forwarding direct or tunnel.
	Director *DirectorCounters `json:"director,omitempty"`

	// ConfiguredWeight is the configured (or admin-set) weight; Weight is
	// the effective one, lowered during a slow start.
	ConfiguredWeight int `json:"configured_weight"`
	// Requests relayed to the backend and how many failed (connect
	// failure, timeout, broken response, 5xx): HTTP services only.
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Histograms for /metrics, too bulky for the JSON: request latency
	// (HTTP services) and connection lifetimes (TCP services); nil where
	// they do not apply.
	Latency   *Histogram `json:"-"`
	Lifetimes *Histogram `json:"-"`
}

// Histogram is a distribution of durations: Counts[i] observations were
// at most Bounds[i] and above Bounds[i-1]; the last count, one more than
// there are bounds, is above every bound.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Health is a backend's health checking.
type Health struct {
	Check string `json:"check"` // tcp, http, https, udp, exec
	// State is "up" or "down"; Since is when it got there.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// The last check: when, how long it took, its verdict and why.
	LastCheck      time.Time `json:"last_check,omitzero"`
	LastDurationMS float64   `json:"last_duration_ms"`
	LastOK         bool      `json:"last_ok"`
	LastReason     string    `json:"last_reason,omitempty"`
	Checks         uint64    `json:"checks"`
	Failures       uint64    `json:"failures"`
	// Flaps counts state changes since the probe started.
	Flaps uint64 `json:"flaps"`
	// Shared is how many (service, backend) pairs this one probe serves.
	Shared int `json:"shared"`

	// Durations of the probe's checks, for /metrics.
	Durations *Histogram `json:"-"`
}
