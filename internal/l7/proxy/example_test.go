package proxy_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
)

// A service with two web servers, an API pool chosen by host, cookie
// persistence and an access log, served until the context ends.
func Example() {
	pool := func(addrs ...string) *balancer.Service {
		var bs []*balancer.Backend
		for _, a := range addrs {
			bs = append(bs, balancer.NewBackend(netip.MustParseAddrPort(a), 1, 0))
		}
		svc, err := balancer.NewService(balancer.ServiceSpec{Name: "web", Protocol: "http", Scheduler: "rr"}, bs, nil, nil, nil)
		if err != nil {
			panic(err)
		}
		return svc
	}
	p := proxy.New(&proxy.Config{
		Name:    "web",
		Default: pool("192.0.2.10:80", "192.0.2.11:80"),
		Routes:  []proxy.Route{{Host: "api.example.com", Pool: pool("192.0.2.20:8080")}},
		Cookie:  &proxy.Cookie{Name: "SRV", Key: []byte("cluster secret"), HTTPOnly: true},
		Forward: proxy.Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true},
		AccessLog: func(e *proxy.Entry) {
			// The entry's slices are only valid during the call.
			slog.Info("request", "client", e.Client, "backend", e.Backend, "method", string(e.Method),
				"path", string(e.Path), "status", e.Status, "total", e.Total)
		},
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	p.Serve(ctx, ln) // returns when ctx ends
	shutdown, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	p.Shutdown(shutdown)
	// Output:
}
