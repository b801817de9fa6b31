package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

func newStatusCmd() *cobra.Command {
	var (
		addr, file  string
		asJSON      bool
		watch, rate time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show services and backends of the running node (like ipvsadm -L -n --stats)",
		Long: `Show the node, its HA groups and every service and backend.

Req/s is requests per second for HTTP services and new connections per
second for TCP and UDP services (ipvsadm --rate's CPS), measured between two
snapshots: between refreshes with --watch, over --rate (1s by default)
before a single table, else not shown ("-"). Errors counts failed requests
for HTTP services (connect failures, timeouts, broken responses, 5xx) and
failed connect attempts for TCP and UDP services.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := adminAddr(addr, file)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			var prev *admin.Status
			if rate > 0 && watch <= 0 && !asJSON {
				if prev, err = fetch(ctx, addr); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(rate):
				}
			}
			for {
				st, err := fetch(ctx, addr)
				if err != nil {
					return err
				}
				if watch > 0 {
					fmt.Fprint(out, "\x1b[H\x1b[2J") // home and clear: refresh in place
				}
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					if err := enc.Encode(st); err != nil {
						return err
					}
				} else {
					renderStatus(out, st, prev, time.Now())
				}
				if watch <= 0 {
					return nil
				}
				prev = st
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(watch):
				}
			}
		},
	}
	addrFlags(cmd, &addr, &file)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON status")
	cmd.Flags().DurationVarP(&watch, "watch", "w", 0, "refresh in place at this interval (e.g. 2s)")
	cmd.Flags().Lookup("watch").NoOptDefVal = "2s"
	cmd.Flags().DurationVar(&rate, "rate", 0, "measure Req/s over this long before printing (e.g. 1s); --watch measures between refreshes")
	cmd.Flags().Lookup("rate").NoOptDefVal = "1s"
	return cmd
}

func fetch(ctx context.Context, addr string) (*admin.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := admin.FetchStatus(ctx, addr)
	if err == nil && st.Time.IsZero() {
		st.Time = time.Now() // a daemon older than the time field
	}
	return st, err
}

// renderStatus prints st as tables in the spirit of ipvsadm -L -n --stats.
// Rates are computed against prev, an earlier status of the same node, when
// there is one.
func renderStatus(w io.Writer, st, prev *admin.Status, now time.Time) {
	fmt.Fprintf(w, "Node %s  fulcrum %s  up %s  config %.12s", st.Node, st.Version, now.Sub(st.Started).Round(time.Second), st.ConfigHash)
	if st.Reloads.OK+st.Reloads.Failed > 0 {
		fmt.Fprintf(w, "  reloads %d ok, %d failed", st.Reloads.OK, st.Reloads.Failed)
	}
	fmt.Fprintln(w)
	if st.Reloads.LastError != "" {
		fmt.Fprintf(w, "Last reload failed: %s\n", firstLine(st.Reloads.LastError))
	}
	if len(st.HA) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "HA groups")
		for _, g := range st.HA {
			fmt.Fprintf(w, "  %s  vrid %d on %s  %s  %s since %s  priority %d",
				g.Name, g.VRID, g.Interface, strings.Join(g.VIPs, ","), strings.ToUpper(g.State),
				now.Sub(g.Since).Round(time.Second), g.Priority)
			if g.Priority != g.ConfiguredPriority {
				fmt.Fprintf(w, " (configured %d)", g.ConfiguredPriority)
			}
			switch {
			case g.State == "master":
				fmt.Fprintf(w, "  master: this node")
			case g.Master != "":
				fmt.Fprintf(w, "  master: %s (priority %d)", g.Master, g.MasterPriority)
			default:
				fmt.Fprintf(w, "  master: none heard")
			}
			fmt.Fprintf(w, "  adverts %d sent %d received", g.AdvertsSent, g.AdvertsReceived)
			fmt.Fprintln(w)
			switch {
			case g.State == "master" && g.VIPsHeld < len(g.VIPs):
				fmt.Fprintf(w, "    holds %d of %d VIPs: adding them failed (see the log)\n", g.VIPsHeld, len(g.VIPs))
			case g.State != "master" && g.VIPsHeld > 0:
				fmt.Fprintf(w, "    still holds %d of %d VIPs (handing over, or removing them failed)\n", g.VIPsHeld, len(g.VIPs))
			}
			if !g.ListenUntil.IsZero() && g.State == "backup" {
				fmt.Fprintf(w, "    starting: listening for a master (initdead) %s more before taking the VIPs\n",
					max(g.ListenUntil.Sub(now), 0).Round(100*time.Millisecond))
			}
			if g.PreemptHeld != "" && g.State == "backup" {
				fmt.Fprintf(w, "    preempt held: %s (at most %s more)\n", g.PreemptHeld,
					max(g.PreemptHoldUntil.Sub(now), 0).Round(100*time.Millisecond))
			}
			if !g.ReleasedAt.IsZero() {
				fmt.Fprintf(w, "    released %s ago (fulcrum ha release): not taking the VIPs back until the master fails; `fulcrum ha reclaim %s` undoes it\n",
					now.Sub(g.ReleasedAt).Round(time.Second), g.Name)
			}
			renderPeers(w, g, st.ConfigHash, now)
			for _, it := range g.Track {
				if !it.OK {
					effect := fmt.Sprintf("-%d", it.Weight)
					if it.Weight == 0 {
						effect = "fault"
					}
					fmt.Fprintf(w, "    tracking %s %s failed (%s): %s\n", it.Kind, it.Name, effect, it.Detail)
				}
			}
		}
	}
	renderDirector(w, st.Director, now)
	// Like ipvsadm: a line per service, its backends indented below it,
	// the backend columns aligned across all services. An http service's
	// route pools follow its own backends, each under a route line.
	rates := newRater(st, prev)
	columns := []struct {
		head string
		cell func(s admin.Service, b admin.Backend) string
	}{
		{"  -> RemoteAddress:Port", func(_ admin.Service, b admin.Backend) string { return "  -> " + b.Address }},
		{"Role", func(_ admin.Service, b admin.Backend) string { return b.Role }},
		{"State", func(_ admin.Service, b admin.Backend) string { return backendState(b) }},
		{"Admin", func(_ admin.Service, b admin.Backend) string { return adminCell(b) }},
		{"Weight", func(_ admin.Service, b admin.Backend) string { return fmt.Sprint(b.Weight) }},
		{"Max", func(_ admin.Service, b admin.Backend) string {
			if b.MaxConnections > 0 {
				return fmt.Sprint(b.MaxConnections)
			}
			return "-"
		}},
		// A director service's backends show flows, and what the director
		// forwarded: the replies bypass it.
		{"Active", func(_ admin.Service, b admin.Backend) string {
			if k := b.Director; k != nil {
				return fmt.Sprint(k.ActiveFlows)
			}
			return fmt.Sprint(b.Active)
		}},
		{"Conns", func(_ admin.Service, b admin.Backend) string {
			if k := b.Director; k != nil {
				return fmt.Sprint(k.NewFlows)
			}
			return fmt.Sprint(b.Total)
		}},
		{"Req/s", rates.cell},
		{"Errors", func(s admin.Service, b admin.Backend) string { return fmt.Sprint(backendErrors(s, b)) }},
		{"InBytes", func(_ admin.Service, b admin.Backend) string {
			if k := b.Director; k != nil {
				return humanBytes(k.Bytes)
			}
			return humanBytes(b.BytesIn)
		}},
		{"OutBytes", func(_ admin.Service, b admin.Backend) string {
			if b.Director != nil {
				return "-"
			}
			return humanBytes(b.BytesOut)
		}},
		{"Health", func(_ admin.Service, b admin.Backend) string { return healthSummary(b.Health, now) }},
	}
	head := make([]string, len(columns))
	for i, c := range columns {
		head[i] = c.head
	}
	// out is what to print in order: a line as is, or a backend row.
	type printed struct {
		text string
		row  []string
	}
	var out []printed
	rows := [][]string{head}
	directed := false
	addBackends := func(s admin.Service, bs []admin.Backend) {
		for _, b := range bs {
			row := make([]string, len(columns))
			for i, c := range columns {
				row[i] = c.cell(s, b)
			}
			rows = append(rows, row)
			out = append(out, printed{row: row})
			// Up maybe, but out of the director's ring: say why.
			if k := b.Director; k != nil && k.NotForwarded != "" {
				out = append(out, printed{text: "       not forwarded: " + firstLine(k.NotForwarded)})
			}
		}
	}
	for _, s := range st.Services {
		var b strings.Builder
		fmt.Fprintf(&b, "%-4s %s %s %s", strings.ToUpper(s.Protocol), s.Listen, s.Name, s.Scheduler)
		if s.Forwarding != "" && s.Forwarding != "proxy" {
			fmt.Fprintf(&b, " %s", s.Forwarding)
			directed = true
		}
		if p := s.Persistence; p != nil {
			fmt.Fprintf(&b, " persistent %g (%d clients)", p.TimeoutSeconds, p.Entries)
		}
		c := s.Counters
		if k := s.Director; k != nil {
			fmt.Fprintf(&b, "  [packets %d bytes %s new-flows %d", k.Packets, humanBytes(k.Bytes), k.NewFlows)
		} else if h := s.HTTP; h != nil {
			fmt.Fprintf(&b, "  [conns %d active %d requests %d 2xx %d 3xx %d 4xx %d 5xx %d bad %d", c.Accepted, c.Active,
				h.Requests, h.Status2xx, h.Status3xx, h.Status4xx, h.Status5xx, h.BadRequests)
			if h.Aborted > 0 {
				fmt.Fprintf(&b, " aborted %d", h.Aborted)
			}
			fmt.Fprintf(&b, " upstream %d new %d reused", h.UpstreamConnects, h.UpstreamReuses)
			if h.Poller == "failed" {
				fmt.Fprintf(&b, " poller failed: %s", firstLine(h.PollerError))
			}
		} else {
			fmt.Fprintf(&b, "  [conns %d active %d no-backend %d connect-failures %d", c.Accepted, c.Active, c.NoBackend, c.ConnectFailures)
		}
		if c.Refused > 0 {
			fmt.Fprintf(&b, " refused %d", c.Refused)
		}
		if c.ProxyHeaderError > 0 {
			fmt.Fprintf(&b, " proxy-header-errors %d", c.ProxyHeaderError)
		}
		if c.Dropped > 0 {
			fmt.Fprintf(&b, " dropped %d", c.Dropped)
		}
		if c.Evicted+c.EvictedPerClient > 0 {
			fmt.Fprintf(&b, " evicted %d (table full) %d (per client)", c.Evicted, c.EvictedPerClient)
		}
		b.WriteString("]")
		out = append(out, printed{text: b.String()})
		addBackends(s, s.Backends)
		if len(s.Removed) > 0 {
			out = append(out, printed{text: "  -- removed at runtime: " + strings.Join(s.Removed, ", ")})
		}
		for _, r := range s.Routes {
			var b strings.Builder
			fmt.Fprintf(&b, "     route %s", r.Name)
			if r.Host != "" {
				fmt.Fprintf(&b, " host %s", r.Host)
			}
			if r.PathPrefix != "" {
				fmt.Fprintf(&b, " path %s*", r.PathPrefix)
			}
			fmt.Fprintf(&b, " %s", r.Scheduler)
			if p := r.Persistence; p != nil {
				fmt.Fprintf(&b, " persistent %g (%d clients)", p.TimeoutSeconds, p.Entries)
			}
			out = append(out, printed{text: b.String()})
			addBackends(routeAsService(s, r), r.Backends)
		}
	}
	widths := make([]int, len(head))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-len(c)+2))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Prot LocalAddress:Port Service Scheduler Flags")
	line(head)
	for _, o := range out {
		if o.row != nil {
			line(o.row)
		} else {
			fmt.Fprintln(w, o.text)
		}
	}
	if directed {
		fmt.Fprintln(w, "direct, tunnel: forwarded by the kernel director; Active and Conns count flows, InBytes what it forwarded (the replies bypass it)")
	}
	if runtimeChanged(st) {
		fmt.Fprintln(w, ",added ,weight and removed: changed at runtime; `fulcrum reload` restores the file")
	}
	if adminPerNode(st) {
		fmt.Fprintln(w, ",node-only: admin state set at runtime on this node alone; its HA peers do not have it (no peer says hello, or one has not taken it)")
	}
	for _, l := range st.AccessLogs {
		if l.WriteErrors > 0 {
			fmt.Fprintf(w, "Access log %s: %d writes failed, %d lines lost, last at %s: %s\n",
				l.Path, l.WriteErrors, l.LinesLost, l.LastErrorAt.Format(time.RFC3339), firstLine(l.LastError))
		}
	}
	if len(st.Alerts.Hooks) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Alert hooks")
		for _, h := range st.Alerts.Hooks {
			fmt.Fprintf(w, "  %s: sent %d, failed %d, rate-limited %d", h.Name, h.Sent, h.Failed, h.Dropped+h.Overflow)
			if h.LastError != "" {
				fmt.Fprintf(w, ", last error: %s", firstLine(h.LastError))
			}
			fmt.Fprintln(w)
		}
	}
}

// renderDirector prints the kernel director's interfaces, flow table,
// the program's counters that are not 0 and the flow sync; nothing
// without a director.
func renderDirector(w io.Writer, d *admin.Director, now time.Time) {
	if d == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "Director")
	if len(d.Interfaces) == 0 {
		fmt.Fprint(w, "  attached nowhere")
	}
	for _, i := range d.Interfaces {
		fmt.Fprintf(w, "  %s %s", i.Name, i.Mode)
	}
	fmt.Fprintf(w, "  flows %d  services %d  backends %d\n", d.FlowEntries, d.Services, d.Slots)
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(d.Counters)) {
		if v := d.Counters[r]; v > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, v))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(w, "  %s\n", strings.Join(reasons, "  "))
	}
	if d.Error != "" {
		fmt.Fprintf(w, "  counters unreadable: %s\n", firstLine(d.Error))
	}
	renderSync(w, d.Sync, now)
}

// renderSync prints the flow sync: its entries counted, each peer with
// how long ago it was last heard and whether its table arrived, and the
// drops by reason.
func renderSync(w io.Writer, s *admin.DirectorSync, now time.Time) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "  sync: %s  sent %d  received %d  installed %d", s.Listen, s.Sent, s.Received, s.Installed)
	if s.Queued > 0 {
		fmt.Fprintf(w, "  queued %d", s.Queued)
	}
	fmt.Fprintln(w)
	// The kernel's new-flow feed: down now, or restarted before.
	switch {
	case s.Feed == "restarting":
		fmt.Fprintf(w, "    new-flow feed down after %d failures, read again in %s: %s\n", s.FeedFailures,
			max(s.FeedRetryAt.Sub(now), 0).Round(100*time.Millisecond), firstLine(s.FeedError))
	case s.FeedFailures > 0:
		fmt.Fprintf(w, "    new-flow feed restarted after %d failures, the last %s ago: %s\n", s.FeedFailures,
			now.Sub(s.FeedLastFailure).Round(time.Second), firstLine(s.FeedError))
	}
	for _, p := range s.Peers {
		who := p.Address
		if p.Node != "" {
			who += " (" + p.Node + ")"
		}
		switch {
		case p.LastHeard.IsZero():
			fmt.Fprintf(w, "    peer %s never heard\n", who)
		case p.Joined.IsZero():
			fmt.Fprintf(w, "    peer %s heard %s ago, its table not received yet\n", who, now.Sub(p.LastHeard).Round(100*time.Millisecond))
		default:
			fmt.Fprintf(w, "    peer %s heard %s ago\n", who, now.Sub(p.LastHeard).Round(100*time.Millisecond))
		}
	}
	if len(s.Dropped) > 0 {
		var drops []string
		for _, r := range slices.Sorted(maps.Keys(s.Dropped)) {
			drops = append(drops, fmt.Sprintf("%s %d", r, s.Dropped[r]))
		}
		fmt.Fprintf(w, "    dropped: %s\n", strings.Join(drops, "  "))
	}
}

// routeAsService views an http route's pool as a service of its own for
// the backend columns: its rates are keyed by the pool's name.
func routeAsService(s admin.Service, r admin.Route) admin.Service {
	return admin.Service{Name: r.Name, Protocol: s.Protocol, Scheduler: r.Scheduler, Backends: r.Backends}
}

// countsRequests reports whether a service's backends count requests
// (the HTTP engine) rather than only connections.
func countsRequests(s admin.Service) bool { return s.Protocol != "tcp" && s.Protocol != "udp" }

// backendRequests is what Req/s counts: requests for HTTP services, new
// connections for TCP and UDP ones.
func backendRequests(s admin.Service, b admin.Backend) uint64 {
	if b.Director != nil {
		return b.Director.NewFlows
	}
	if countsRequests(s) {
		return b.Requests
	}
	return b.Total
}

// backendErrors is the Errors column: failed requests, or failed connect
// attempts where there are no requests.
func backendErrors(s admin.Service, b admin.Backend) uint64 {
	if countsRequests(s) {
		return b.Errors
	}
	return b.ConnectFailures
}

// rater computes Req/s between two statuses.
type rater struct {
	prev    map[[2]string]uint64 // (service, address) → requests
	seconds float64
}

func newRater(st, prev *admin.Status) rater {
	if prev == nil || !st.Time.After(prev.Time) {
		return rater{}
	}
	r := rater{prev: map[[2]string]uint64{}, seconds: st.Time.Sub(prev.Time).Seconds()}
	for _, s := range prev.Services {
		for _, b := range s.Backends {
			r.prev[[2]string{s.Name, b.Address}] = backendRequests(s, b)
		}
		for _, rt := range s.Routes {
			ps := routeAsService(s, rt)
			for _, b := range rt.Backends {
				r.prev[[2]string{ps.Name, b.Address}] = backendRequests(ps, b)
			}
		}
	}
	return r
}

// cell is the rate of b, or "-" without an earlier count to compare (no
// earlier status, a backend just added, counters restarted).
func (r rater) cell(s admin.Service, b admin.Backend) string {
	before, ok := r.prev[[2]string{s.Name, b.Address}]
	now := backendRequests(s, b)
	if !ok || now < before {
		return "-"
	}
	v := float64(now-before) / r.seconds
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func backendState(b admin.Backend) string {
	switch {
	case !b.Healthy:
		return "down"
	case b.Weight == 0:
		return "quiesced"
	case !b.Available && (b.AdminState == "" || b.AdminState == "ready"):
		return "full"
	case b.SlowStart:
		return "slow-start"
	default:
		return "up"
	}
}

// adminCell is the operator's state of a backend and how it differs from
// the config file; the fallback server has none.
func adminCell(b admin.Backend) string {
	if b.Role == admin.RoleFallback || b.AdminState == "" {
		return "-"
	}
	s := b.AdminState
	if b.Runtime != "" {
		s += "," + b.Runtime // one word, for awk
	}
	if b.AdminScope == "node" {
		s += ",node-only"
	}
	return s
}

// adminPerNode reports whether a backend's runtime admin state is this
// node's alone.
func adminPerNode(st *admin.Status) bool {
	for _, s := range st.Services {
		pools := [][]admin.Backend{s.Backends}
		for _, r := range s.Routes {
			pools = append(pools, r.Backends)
		}
		for _, p := range pools {
			for _, b := range p {
				if b.AdminScope == "node" {
					return true
				}
			}
		}
	}
	return false
}

func runtimeChanged(st *admin.Status) bool {
	for _, s := range st.Services {
		if len(s.Removed) > 0 {
			return true
		}
		for _, b := range s.Backends {
			if b.Runtime != "" {
				return true
			}
		}
	}
	return false
}

// renderPeers prints the group's peers, each with how long ago it was
// last heard (by advert or hello, whichever is newer), and warns about
// peers gone — with "no redundancy" when none is left — and about peers
// that run another config hash than ours (their hellos carry it, and
// authenticated adverts; "same config" marks those that agree).
func renderPeers(w io.Writer, g admin.HAGroup, ours string, now time.Time) {
	if len(g.Peers) == 0 {
		return
	}
	var peers, gone []string
	for _, p := range g.Peers {
		who := p.Address
		if p.Node != "" && p.State != "" && !p.Gone { // from its hellos
			who += fmt.Sprintf(" (%s %s)", p.Node, p.State)
		} else if p.Node != "" {
			who += " (" + p.Node + ")"
		}
		ago := now.Sub(peerLastSeen(p)).Round(100 * time.Millisecond)
		if p.Gone {
			gone = append(gone, fmt.Sprintf("%s gone, last heard %s ago", who, ago))
			continue
		}
		s := fmt.Sprintf("%s priority %d %s ago", who, p.Priority, ago)
		if p.ConfigHash != "" && strings.HasPrefix(ours, p.ConfigHash) {
			s += " (same config)"
		}
		peers = append(peers, s)
	}
	if len(peers) > 0 {
		fmt.Fprintf(w, "    peers heard: %s\n", strings.Join(peers, ", "))
	}
	for _, s := range gone {
		if len(peers) == 0 {
			fmt.Fprintf(w, "    WARNING: no redundancy: peer %s; no other peer heard\n", s)
		} else {
			fmt.Fprintf(w, "    WARNING: peer %s\n", s)
		}
	}
	for _, p := range g.Peers {
		if p.ConfigHash != "" && !p.Gone && !strings.HasPrefix(ours, p.ConfigHash) {
			fmt.Fprintf(w, "    WARNING: peer %s runs config %.12s, this node %.12s\n", p.Address, p.ConfigHash, ours)
		}
	}
}

// peerLastSeen is when a peer was last heard: its last advert or its
// last hello, whichever is newer.
func peerLastSeen(p admin.HAPeer) time.Time {
	if p.LastHello.After(p.LastHeard) {
		return p.LastHello
	}
	return p.LastHeard
}

// healthSummary is ldirectord's status in one cell: the check, its state
// and for how long, flaps, and why the last check failed.
func healthSummary(h *admin.Health, now time.Time) string {
	if h == nil {
		return "-"
	}
	s := fmt.Sprintf("%s %s %s", h.Check, h.State, now.Sub(h.Since).Round(time.Second))
	if h.Flaps > 0 {
		s += fmt.Sprintf(" flaps %d", h.Flaps)
	}
	if !h.LastOK && h.LastReason != "" {
		s += ": " + h.LastReason
	}
	return s
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
