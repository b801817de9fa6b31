// Package proxy is the HTTP engine of services with protocol http: an
// HTTP/1.1 reverse proxy with keep-alive on both sides, per-request
// balancing over the balancer's schedulers and persistence, routing by Host
// and path prefix, cookie persistence, and a bounded pool of reusable
// connections per backend; TLS termination with HTTP/2 (ALPN h2) served by
// golang.org/x/net/http2 through the same routing and pools.
//
// # Fast path
//
// A client connection is one goroutine with a pooled bufio.Reader and
// bufio.Writer. A request head is parsed in place by package http1 (usually
// from one read), re-encoded into the backend connection's write buffer
// and sent with one write; the response head is parsed in place from one
// read and re-encoded into the client's write buffer together with a small
// body, one write again. Nothing is allocated per request: the Request,
// Response, chunk reader and exchange state live in the connection, the
// route and cookie lookups compare bytes, and socket deadlines are re-armed
// only every quarter of their timeout.
//
// # Choices
//
// Expect: 100-continue is answered by the proxy itself once a backend
// connection is ready, and not forwarded: the body then flows in one pass
// and a backend that ignores the expectation cannot leave the client
// waiting. Interim responses other than 100 (103 Early Hints) are relayed
// to HTTP/1.1 clients.
//
// A failed connect is retried on another backend up to Config.Retries
// times: nothing was sent. A reused connection that fails before any byte
// of the answer (the backend closed it while idle) is replaced by a new
// connection to the same backend when the request is idempotent and has no
// body, as net/http does; otherwise the client gets 502.
//
// A response delimited by closing is relayed as such and the client
// connection closes after it. A chunked response to an HTTP/1.0 client is
// decoded and delimited by closing. CONNECT is refused with 405: this is a
// reverse proxy. A 101 to a request with Upgrade turns the connection into
// a byte tunnel both ways until both ends close; a direction silent for
// IdleTimeout while the other is silent too ends it.
package proxy
