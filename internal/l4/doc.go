// Package l4 is fulcrum's layer-4 data plane: a TCP proxy and a UDP
// session proxy, one per listen address, each serving a balancer.Service.
//
// The daemon creates the listening sockets and hands them to Serve, so a
// socket survives reloads; a reload only calls Update, which publishes a
// new service snapshot with an atomic pointer. The TCP hot path loads the
// snapshot once per connection; the UDP path once per new session.
//
// TCP bytes are relayed with io.Copy between the two *net.TCPConn, which on
// Linux moves them with splice(2) and never through user space. The idle
// timeout therefore cannot count bytes itself: it asks the kernel
// (TCP_INFO) whether either socket moved data, see idle.go.
//
// Logging goes to the injected *slog.Logger as is: the caller scopes it
// (component=l4, service=NAME). Per-connection and per-session events are
// logged only at Debug, behind Enabled.
package l4
