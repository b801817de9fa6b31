package admin

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector renders a Source's Status as Prometheus metrics at scrape
// time. The data path keeps its own atomic counters and never hears of
// Prometheus; a scrape costs one Status call, as GET /api/v1/status does.
// docs/metrics.md lists every metric: keep it in step.
type collector struct {
	src   Source
	descs []*prometheus.Desc

	info, started, reloads, reloadOK *prometheus.Desc

	svcConns, svcActive, svcNoBackend, svcRefused, svcConnFail, svcProxyErr, svcIdle *prometheus.Desc
	svcUDPDropped, svcUDPEvicted, svcUDPSendErr, svcPersist                          *prometheus.Desc
	svcPoller                                                                        *prometheus.Desc

	beConns, beActive, beConnFail, beIn, beOut, beLifetime      *prometheus.Desc
	beReqs, beReqErrs, beLatency                                *prometheus.Desc
	beUp, beAvailable, beWeight, beEffWeight                    *prometheus.Desc
	hcChecks, hcFailures, hcFlaps, hcDuration, hcLast, hcLastAt *prometheus.Desc

	alertDeliveries, alertQueueDropped *prometheus.Desc
	logLines, logErrors, logLost       *prometheus.Desc

	haState, haPrio, haConfPrio, haMasterPrio, haTransitions     *prometheus.Desc
	haSent, haReceived, haSendErr, haDropped, haVIPs, haVIPsHeld *prometheus.Desc
	haPeerPrio, haPeerAdverts, haPeerLastHeard, haTrackOK        *prometheus.Desc
	haPeerConfigMatch, haHellosSent, haHelloDropped              *prometheus.Desc
	haPeerGone, haReleased, haPreemptHeld                        *prometheus.Desc

	dirPackets, dirBytes, dirNewFlows, dirActiveFlows, dirForwarding       *prometheus.Desc
	dirAttached, dirFlowEntries, dirProgram                                *prometheus.Desc
	syncEntries, syncDatagrams, syncDropped                                *prometheus.Desc
	syncQueued, syncDumps, syncPeerLastHeard, syncFeedUp, syncFeedFailures *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// haStates are the values of fulcrum_ha_state's state label, every one
// exported (0 or 1) so that a query need not know which exists.
var haStates = []string{"initialize", "backup", "master", "fault"}

func newCollector(src Source) *collector {
	c := &collector{src: src}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc("fulcrum_"+name, help, labels, nil)
		c.descs = append(c.descs, desc)
		return desc
	}
	svc := []string{"service"}
	be := []string{"service", "backend"}
	grp := []string{"group"}

	c.info = d("info", "Always 1: the node's name, fulcrum's version and the hash of the effective config.", "node", "version", "config_hash")
	c.started = d("start_time_seconds", "When the daemon started, in seconds since the Unix epoch.")
	c.reloads = d("config_reloads_total", "Configuration reloads by result (ok, failed).", "result")
	c.reloadOK = d("config_last_reload_successful", "1 if the last reload succeeded or none was tried, 0 if it failed.")

	c.svcConns = d("service_connections_total", "Client connections (UDP: sessions) accepted by a service.", svc...)
	c.svcActive = d("service_connections_active", "Client connections (UDP: sessions) of a service open now.", svc...)
	c.svcNoBackend = d("service_no_backend_total", "TCP connections closed without reaching a backend (none available, or every connect attempt failed), and UDP datagrams from new clients that found no backend.", svc...)
	c.svcRefused = d("service_refused_total", "Clients turned away because no backend was usable on arrival (every primary and backup down, disabled or full, and the fallback down or absent): TCP connections, UDP datagrams of new clients, HTTP requests answered 503.", svc...)
	c.svcConnFail = d("service_connect_failures_total", "Failed attempts to connect to a backend, over all backends of a service.", svc...)
	c.svcProxyErr = d("service_proxy_header_errors_total", "Connections closed because their inbound PROXY protocol header was malformed, missing or late (TCP services).", svc...)
	c.svcIdle = d("service_idle_timeouts_total", "Connections (UDP: sessions) ended by the idle timeout.", svc...)
	c.svcUDPDropped = d("service_udp_dropped_total", "Datagrams from new clients refused because the proxy was shutting down (UDP services).", svc...)
	c.svcUDPEvicted = d("service_udp_evicted_total", "UDP sessions ended to make room for a new client's, by reason: table_full (max_sessions reached: the least recently active session goes), per_client (the client address reached max_sessions_per_client: its own least recently active session goes).", "service", "reason")
	c.svcUDPSendErr = d("service_udp_send_errors_total", "Datagrams that could not be sent to a backend or a client (UDP services).", svc...)
	c.svcPersist = d("service_persistence_entries", "Clients in a service's persistence table.", svc...)
	c.svcPoller = d("service_http_poller", "1 for the state of the poller the HTTP/1.1 reads of a service wait on (on; off: turned off by http.poller or FULCRUM_HTTP_POLLER; failed: could not start or stopped on an error, reads wait in Go's netpoller), 0 for the others (HTTP services).", "service", "state")

	c.beConns = d("backend_connections_total", "Connections (UDP: sessions) opened to a backend, including failed attempts.", be...)
	c.beActive = d("backend_connections_active", "Connections (UDP: sessions) to a backend open now.", be...)
	c.beConnFail = d("backend_connect_failures_total", "Failed attempts to connect to a backend.", be...)
	c.beIn = d("backend_in_bytes_total", "Bytes relayed from clients to a backend, counted when each connection ends.", be...)
	c.beOut = d("backend_out_bytes_total", "Bytes relayed from a backend to clients, counted when each connection ends.", be...)
	c.beLifetime = d("backend_connection_duration_seconds", "How long connections to a backend lived, from connect to close (TCP services).", be...)
	c.beReqs = d("backend_requests_total", "Requests relayed to a backend (HTTP services).", be...)
	c.beReqErrs = d("backend_request_errors_total", "Requests to a backend that failed: connect failure, timeout, broken response or 5xx (HTTP services).", be...)
	c.beLatency = d("backend_request_duration_seconds", "Time from picking a backend to the end of its response (HTTP services).", be...)
	c.beUp = d("backend_up", "1 if health checking considers the backend up (always 1 without a check), else 0.", be...)
	c.beAvailable = d("backend_available", "1 if the backend may take a new connection now: up, weight above 0 and below its connection limit.", be...)
	c.beWeight = d("backend_weight", "The backend's configured (or admin-set) weight.", be...)
	c.beEffWeight = d("backend_effective_weight", "The weight the scheduler uses now: 0 while down, lowered during a slow start.", be...)
	c.hcChecks = d("health_checks_total", "Active health checks run for a backend.", be...)
	c.hcFailures = d("health_check_failures_total", "Active health checks of a backend that failed.", be...)
	c.hcFlaps = d("health_transitions_total", "Changes of a backend's health state (up/down) since its check started.", be...)
	c.hcDuration = d("health_check_duration_seconds", "How long a backend's health checks took.", be...)
	c.hcLast = d("health_last_check_duration_seconds", "How long a backend's last health check took.", be...)
	c.hcLastAt = d("health_last_check_timestamp_seconds", "When a backend's last health check started, in seconds since the Unix epoch.", be...)

	c.alertDeliveries = d("alert_deliveries_total", "Alert events per hook by result: sent, failed, rate_limited (over max_per_minute), overflow (the hook's queue was full).", "hook", "result")
	c.alertQueueDropped = d("alert_queue_dropped_total", "Alert events lost because the dispatcher's queue was full.")
	c.logLines = d("access_log_lines_total", "Lines queued for an access-log destination (file or stderr).", "path")
	c.logErrors = d("access_log_write_errors_total", "Failed writes to an access-log destination (a full disk); each loses the lines it carried.", "path")
	c.logLost = d("access_log_lines_lost_total", "Access-log lines lost by failed writes.", "path")

	c.haState = d("ha_state", "1 for the HA group's current VRRP state, 0 for the others.", "group", "state")
	c.haPrio = d("ha_priority", "The group's effective VRRP priority on this node, after tracking.", grp...)
	c.haConfPrio = d("ha_configured_priority", "The group's configured VRRP priority on this node.", grp...)
	c.haMasterPrio = d("ha_master_priority", "The priority the group's master advertises (this node's when master); absent while no master is known.", grp...)
	c.haTransitions = d("ha_transitions_total", "VRRP state changes of the group.", grp...)
	c.haSent = d("ha_adverts_sent_total", "VRRP adverts sent.", grp...)
	c.haReceived = d("ha_adverts_received_total", "Valid VRRP adverts received for the group's VRID.", grp...)
	c.haSendErr = d("ha_advert_send_errors_total", "VRRP adverts that could not be sent.", grp...)
	c.haDropped = d("ha_adverts_dropped_total", "Received VRRP packets dropped, by reason (ttl, vrid, version, type, length, checksum, family, interval, auth, replay, peer, self, other); a reason appears once it has counted.", "group", "reason")
	c.haHellosSent = d("ha_hellos_sent_total", "Hellos (the config-hash datagrams on ha.hello_port) sent for the group.", grp...)
	c.haHelloDropped = d("ha_hellos_dropped_total", "Datagrams on the hello port dropped, by reason (auth, stale, not_peer, vrid, malformed, unknown_group); malformed and unknown_group name no group and count in every group of the family that received them; a reason appears once it has counted.", "group", "reason")
	c.haVIPs = d("ha_vips", "Virtual addresses configured for the group.", grp...)
	c.haVIPsHeld = d("ha_vips_held", "Virtual addresses of the group this node holds.", grp...)
	c.haPeerPrio = d("ha_peer_priority", "The priority in the last advert heard from a peer (0: it was leaving).", "group", "peer")
	c.haPeerAdverts = d("ha_peer_adverts_received_total", "Valid adverts received from a peer.", "group", "peer")
	c.haPeerConfigMatch = d("ha_peer_config_match", "1 when a peer runs the same config hash as this node, 0 when another; absent while its hash is unknown.", "group", "peer")
	c.haPeerLastHeard = d("ha_peer_last_advert_timestamp_seconds", "When a peer's last advert arrived, in seconds since the Unix epoch.", "group", "peer")
	c.haPeerGone = d("ha_peer_gone", "1 for a peer heard before and silent since (no hello for 5s, or the master this node took over from for its silence), 0 for one still heard.", "group", "peer")
	c.haPreemptHeld = d("ha_preempt_held", "1 while this node leaves a live master it outranks in place, waiting for its peers' flow tables (docs/ha.md), else 0.", grp...)
	c.haReleased = d("ha_released", "1 while `fulcrum ha release` holds this node back from taking the group's VIPs again, else 0.", grp...)
	c.dirPackets = d("director_packets_total", "Packets from clients the kernel director forwarded to a backend (forwarding direct or tunnel).", be...)
	c.dirBytes = d("director_bytes_total", "Bytes from clients the kernel director forwarded to a backend; the replies bypass the director.", be...)
	c.dirNewFlows = d("director_new_flows_total", "Flows the kernel director created toward a backend.", be...)
	c.dirForwarding = d("director_backend_forwarding", "1 while the kernel director can forward to a backend, 0 while it leaves it out of its ring for want of a way to it (no route or neighbour entry yet, a router in the way of direct routing, no tunnel source) or a failed write; the status and the log say why.", be...)
	c.dirActiveFlows = d("director_active_flows", "Flows pinned to a backend that saw a packet within director.flow_timeout.", be...)
	c.dirAttached = d("director_attached", "1 for each interface the director's XDP program is attached to, with the mode it runs in (native, generic).", "interface", "mode")
	c.dirFlowEntries = d("director_flow_entries", "Flows in the director's flow table that saw a packet within director.flow_timeout.")
	c.dirProgram = d("director_program_total", "The XDP program's own counters by reason: tx and redirect (forwarded), passed_* (left to the kernel's stack), dropped_*, icmp, events_lost, ...", "reason")
	c.syncEntries = d("director_sync_entries_total", "Flow sync entries (flows, persistence entries) by direction: sent (counted once per peer), received, installed into the kernel's tables.", "direction")
	c.syncDatagrams = d("director_sync_datagrams_total", "Flow sync datagrams by direction: sent, received (accepted).", "direction")
	c.syncDropped = d("director_sync_dropped_total", "Flow sync drops by reason: rate, send (entries not sent); auth, replay, malformed, not_peer (datagrams); unknown_service, unknown_backend, install (entries received, not installed); a reason appears once it has counted.", "reason")
	c.syncQueued = d("director_sync_queued", "Flow sync entries waiting to be sent (director.sync.max_rate).")
	c.syncFeedUp = d("director_sync_feed_up", "1 while the flow sync reads the kernel's new-flow feed, 0 while it waits to read it again after a failure (1 s, doubling up to 30 s).")
	c.syncFeedFailures = d("director_sync_feed_failures_total", "Failures of the kernel's new-flow feed the flow sync reads; each is followed by a restart.")
	c.syncDumps = d("director_sync_dumps_total", "Flow tables sent to peers that joined.")
	c.syncPeerLastHeard = d("director_sync_peer_last_heard_timestamp_seconds", "When a flow sync peer's last accepted datagram arrived, in seconds since the Unix epoch; absent until one did.", "peer")
	c.haTrackOK = d("ha_track_ok", "1 if a tracked item (service, interface, script, ping) of the group is fine, else 0.", "group", "kind", "name")
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	hist := func(d *prometheus.Desc, h *Histogram, labels ...string) {
		if h == nil {
			return
		}
		buckets := make(map[float64]uint64, len(h.Bounds))
		var cum uint64
		for i, b := range h.Bounds {
			cum += h.Counts[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
	}

	gauge(c.info, 1, st.Node, st.Version, st.ConfigHash)
	if !st.Started.IsZero() {
		gauge(c.started, unix(st.Started))
	}
	counter(c.reloads, float64(st.Reloads.OK), "ok")
	counter(c.reloads, float64(st.Reloads.Failed), "failed")
	gauge(c.reloadOK, bool01(st.Reloads.LastError == ""))

	for _, s := range st.Services {
		n, k := s.Name, s.Counters
		counter(c.svcConns, float64(k.Accepted), n)
		gauge(c.svcActive, float64(k.Active), n)
		counter(c.svcNoBackend, float64(k.NoBackend), n)
		counter(c.svcRefused, float64(k.Refused), n)
		counter(c.svcConnFail, float64(k.ConnectFailures), n)
		counter(c.svcIdle, float64(k.IdleTimeouts), n)
		if s.Protocol == "udp" {
			counter(c.svcUDPDropped, float64(k.Dropped), n)
			counter(c.svcUDPEvicted, float64(k.Evicted), n, "table_full")
			counter(c.svcUDPEvicted, float64(k.EvictedPerClient), n, "per_client")
			counter(c.svcUDPSendErr, float64(k.SendErrors), n)
		} else {
			counter(c.svcProxyErr, float64(k.ProxyHeaderError), n)
		}
		if s.Persistence != nil {
			gauge(c.svcPersist, float64(s.Persistence.Entries), n)
		}
		if h := s.HTTP; h != nil && h.Poller != "" {
			for _, state := range pollerStates {
				gauge(c.svcPoller, bool01(h.Poller == state), n, state)
			}
		}
		c.backends(n, s.Backends, counter, gauge, hist)
		// Route pools of an http service, as SERVICE/ROUTE.
		for _, r := range s.Routes {
			c.backends(n+"/"+r.Name, r.Backends, counter, gauge, hist)
		}
	}

	if dir := st.Director; dir != nil {
		for _, i := range dir.Interfaces {
			gauge(c.dirAttached, 1, i.Name, i.Mode)
		}
		gauge(c.dirFlowEntries, float64(dir.FlowEntries))
		for reason, v := range dir.Counters {
			counter(c.dirProgram, float64(v), reason)
		}
		if s := dir.Sync; s != nil {
			counter(c.syncEntries, float64(s.Sent), "sent")
			counter(c.syncEntries, float64(s.Received), "received")
			counter(c.syncEntries, float64(s.Installed), "installed")
			counter(c.syncDatagrams, float64(s.DatagramsSent), "sent")
			counter(c.syncDatagrams, float64(s.DatagramsReceived), "received")
			for reason, v := range s.Dropped {
				counter(c.syncDropped, float64(v), reason)
			}
			gauge(c.syncQueued, float64(s.Queued))
			counter(c.syncDumps, float64(s.Dumps))
			if s.Feed != "" && s.Feed != "off" {
				gauge(c.syncFeedUp, bool01(s.Feed == "running"))
				counter(c.syncFeedFailures, float64(s.FeedFailures))
			}
			for _, p := range s.Peers {
				if !p.LastHeard.IsZero() {
					gauge(c.syncPeerLastHeard, unix(p.LastHeard), p.Address)
				}
			}
		}
	}

	counter(c.alertQueueDropped, float64(st.Alerts.QueueDropped))
	for _, l := range st.AccessLogs {
		counter(c.logLines, float64(l.Lines), l.Path)
		counter(c.logErrors, float64(l.WriteErrors), l.Path)
		counter(c.logLost, float64(l.LinesLost), l.Path)
	}
	for _, h := range st.Alerts.Hooks {
		counter(c.alertDeliveries, float64(h.Sent), h.Name, "sent")
		counter(c.alertDeliveries, float64(h.Failed), h.Name, "failed")
		counter(c.alertDeliveries, float64(h.Dropped), h.Name, "rate_limited")
		counter(c.alertDeliveries, float64(h.Overflow), h.Name, "overflow")
	}

	for _, g := range st.HA {
		n := g.Name
		for _, s := range haStates {
			gauge(c.haState, bool01(haStateName(g.State) == s), n, s)
		}
		gauge(c.haPrio, float64(g.Priority), n)
		gauge(c.haConfPrio, float64(g.ConfiguredPriority), n)
		if g.Master != "" {
			gauge(c.haMasterPrio, float64(g.MasterPriority), n)
		}
		counter(c.haTransitions, float64(g.Transitions), n)
		counter(c.haSent, float64(g.AdvertsSent), n)
		counter(c.haReceived, float64(g.AdvertsReceived), n)
		counter(c.haSendErr, float64(g.SendErrors), n)
		for reason, v := range g.Dropped {
			counter(c.haDropped, float64(v), n, reason)
		}
		counter(c.haHellosSent, float64(g.HellosSent), n)
		for reason, v := range g.HelloDropped {
			counter(c.haHelloDropped, float64(v), n, reason)
		}
		gauge(c.haVIPs, float64(len(g.VIPs)), n)
		gauge(c.haVIPsHeld, float64(g.VIPsHeld), n)
		for _, p := range g.Peers {
			if p.Adverts > 0 || p.Hellos > 0 { // not a gone peer the hello has forgotten
				gauge(c.haPeerPrio, float64(p.Priority), n, p.Address)
			}
			if p.Adverts > 0 { // heard by VRRP, not by hello only (or gone, forgotten by the hello)
				counter(c.haPeerAdverts, float64(p.Adverts), n, p.Address)
				gauge(c.haPeerLastHeard, unix(p.LastHeard), n, p.Address)
			}
			if p.ConfigHash != "" {
				gauge(c.haPeerConfigMatch, bool01(strings.HasPrefix(st.ConfigHash, p.ConfigHash)), n, p.Address)
			}
			gauge(c.haPeerGone, bool01(p.Gone), n, p.Address)
		}
		gauge(c.haReleased, bool01(!g.ReleasedAt.IsZero()), n)
		gauge(c.haPreemptHeld, bool01(g.PreemptHeld != ""), n)
		for _, t := range g.Track {
			gauge(c.haTrackOK, bool01(t.OK), n, t.Kind, t.Name)
		}
	}
}

// haStateName maps the API's state names to the label's, which spell
// VRRP's Initialize in full like the vrrp package does.
func haStateName(s string) string {
	s = strings.ToLower(s)
	if s == "init" {
		return "initialize"
	}
	return s
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// newRegistry holds the collector and the Go runtime's and the process's
// standard metrics.
func newRegistry(src Source, extra ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(extra...)
	reg.MustRegister(
		newCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metricsHandler serves GET /metrics. A metric that fails is logged and
// left out rather than failing the whole scrape.
func metricsHandler(src Source, log *slog.Logger, extra ...prometheus.Collector) http.Handler {
	return promhttp.HandlerFor(newRegistry(src, extra...), promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

type (
	counterFn func(d *prometheus.Desc, v float64, labels ...string)
	histFn    func(d *prometheus.Desc, h *Histogram, labels ...string)
)

// backends sends the metrics of one service's (or route pool's) backends.
func (c *collector) backends(n string, bs []Backend, counter, gauge counterFn, hist histFn) {
	// A fallback may share its address with a backend; the registry
	// rejects a repeated label set, so the first role wins.
	seen := make(map[string]bool, len(bs))
	for _, b := range bs {
		if seen[b.Address] {
			continue
		}
		seen[b.Address] = true
		l := []string{n, b.Address}
		counter(c.beConns, float64(b.Total), l...)
		gauge(c.beActive, float64(b.Active), l...)
		counter(c.beConnFail, float64(b.ConnectFailures), l...)
		counter(c.beIn, float64(b.BytesIn), l...)
		counter(c.beOut, float64(b.BytesOut), l...)
		hist(c.beLifetime, b.Lifetimes, l...)
		if k := b.Director; k != nil {
			counter(c.dirPackets, float64(k.Packets), l...)
			counter(c.dirBytes, float64(k.Bytes), l...)
			counter(c.dirNewFlows, float64(k.NewFlows), l...)
			gauge(c.dirActiveFlows, float64(k.ActiveFlows), l...)
			gauge(c.dirForwarding, bool01(k.NotForwarded == ""), l...)
		}
		if b.Latency != nil {
			counter(c.beReqs, float64(b.Requests), l...)
			counter(c.beReqErrs, float64(b.Errors), l...)
			hist(c.beLatency, b.Latency, l...)
		}
		gauge(c.beUp, bool01(b.Healthy), l...)
		gauge(c.beAvailable, bool01(b.Available), l...)
		gauge(c.beWeight, float64(b.ConfiguredWeight), l...)
		eff := b.Weight
		if !b.Healthy || b.AdminState == "drain" || b.AdminState == "maint" {
			eff = 0
		}
		gauge(c.beEffWeight, float64(eff), l...)
		if h := b.Health; h != nil {
			counter(c.hcChecks, float64(h.Checks), l...)
			counter(c.hcFailures, float64(h.Failures), l...)
			counter(c.hcFlaps, float64(h.Flaps), l...)
			hist(c.hcDuration, h.Durations, l...)
			if !h.LastCheck.IsZero() {
				gauge(c.hcLast, h.LastDurationMS/1000, l...)
				gauge(c.hcLastAt, unix(h.LastCheck), l...)
			}
		}
	}
}

// pollerStates are the values of HTTPCounters.Poller.
var pollerStates = []string{"on", "off", "failed"}
