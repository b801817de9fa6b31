// Package poller tells the goroutines of fulcrum's HTTP/1.1 path when
// their sockets have something to read, in place of Go's netpoller, so
// that requests are served in the order they arrive.
//
// Go's scheduler looks at the netpoller only when it has nothing else to
// run, and then queues what it found in reverse order. Under load the run
// queue is never empty for long: the netpoller is consulted once per pass
// over every busy connection (about a millisecond at 64 connections on one
// core), the requests that arrived meanwhile wait for the whole pass, and
// the ones that arrived first are served last. HAProxy's event loop polls
// between short batches, in arrival order. Measured at 64 connections on
// one core (bench/l7): with Go's netpoller the latency's p90 was 1.6 ms
// against HAProxy's 1.3 ms and its p99 up to 1.5× HAProxy's; with this
// poller both are level with HAProxy's, at the same throughput
// (docs/BENCHMARKS.md).
//
// One goroutine owns an epoll instance holding the registered sockets
// (edge-triggered; they stay in Go's netpoller too). It polls without
// blocking, wakes the goroutines waiting on the sockets it finds ready in
// that order, and yields, so that it polls again after every pass of the
// run queue. When a poll finds nothing and no goroutine has begun a wait
// since the last one, it sleeps, with the epoll descriptor in Go's
// netpoller, until one of the sockets has data again.
//
// A wake-up never blocks the poller's goroutine. When the poller cannot
// start (no epoll: every platform but Linux) Start returns an error; when
// it stops (Close, or epoll failing) every waiter is woken and Wait
// reports false from then on: its owner reads through Go's netpoller.
package poller
