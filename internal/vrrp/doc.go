// Package vrrp is fulcrum's failover of virtual addresses between
// balancer nodes: VRRP version 3 (RFC 9568, which replaces RFC 5798), so
// that a fulcrum node can share a virtual router with keepalived
// (vrrp_version 3) or a router as well as with other fulcrum nodes.
//
// The package has three parts, one file each:
//
//   - advert.go: the advertisement codec. The checksum includes the
//     pseudo-header for IPv4 too, as keepalived does by default.
//   - instance.go: the state machine of RFC 9568 section 6.4, with
//     preemption (and a preempt delay), tracking (a priority delta and a
//     fault state), graceful release and split-brain resolution.
//   - conn_linux.go: the raw IP protocol 112 socket, multicast or unicast.
//
// An Instance owns its state in the goroutine that runs Run and talks to
// the network only through two small interfaces, Conn (adverts) and
// Announcer (taking and giving up the addresses, gratuitous ARP and
// unsolicited NA, implemented by the privileged netif package), so all of
// its logic is tested without root against fakes, on synctest's clock.
//
// Timing. With the default 100ms interval, a backup of priority p takes
// over n×100ms + (256−p)/256×100ms after the master's last advert, where n
// is Config.DownAdverts (RFC 9568's 3 unless set; fulcrum's config
// defaults to 2): 0.36s or 0.26s at priority 100. A master that stops cleanly (or is released, or goes to
// Fault) sends priority 0, and the best backup takes over after only its
// skew time, (256−p)/256×100ms. A backup learns the master's interval
// from its adverts, so mixed intervals still elect correctly.
//
// Optional HMAC-SHA256 authentication (auth.go) protects fulcrum-only
// clusters against forged and replayed adverts; an authenticated advert is
// longer than its address count says, so keepalived and routers drop it:
// a cluster authenticates on all nodes or on none.
//
// Logging goes to the injected *slog.Logger, scoped by the caller; the
// Instance adds vrid. Transitions are logged at Info, dropped packets at
// Debug only.
package vrrp
