package cli

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/daemon"
	"github.com/fulcrum-lb/fulcrum/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var a demo.Addrs
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start demo backends and a balancer in front of them on loopback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := demoAddrsFree(a); err != nil {
				return err
			}
			setup, err := demo.Start(a)
			if err != nil {
				return err
			}
			defer setup.Close()
			load := func() (*config.Config, error) {
				cfg, err := config.Parse("demo.yaml", setup.Config)
				if err != nil {
					return nil, err
				}
				return cfg, daemon.Plan(cfg)
			}
			cfg, err := load()
			if err != nil {
				return fmt.Errorf("demo config: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "fulcrum demo — the config it runs:\n\n%s\n", setup.Config)
			fmt.Fprintf(out, `Try, in another terminal:
  for i in 1 2 3 4 5 6; do curl -s http://%[1]s/; done   # weighted round robin 1:2:3
  echo hi | nc -u -w1 %[2]s                           # UDP, one session per client port
  go run ./cmd/fulcrum status --admin %[3]s --watch     # live table of services and backends
  curl -s http://%[3]s/api/v1/status                  # the same as JSON
  curl -s http://%[3]s/metrics                        # Prometheus metrics
Press Ctrl-C to stop.

`, a.Web, hostPortSpaced(a.UDP), a.Admin)
			return runDaemon(cmd, cfg, load)
		},
	}
	cmd.Flags().StringVar(&a.Web, "web", "127.0.0.1:8080", "TCP (HTTP) virtual service address")
	cmd.Flags().StringVar(&a.UDP, "udp", "127.0.0.1:8053", "UDP virtual service address")
	cmd.Flags().StringVar(&a.Admin, "admin", "127.0.0.1:9900", "admin API address")
	return cmd
}

// hostPortSpaced turns "host:port" into "host port", as nc wants it.
func hostPortSpaced(hp string) string {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return hp
	}
	return host + " " + port
}

// demoAddrsFree binds each of the demo's addresses for a moment, all at
// once, so that an address in use (by another program, or given to two
// flags) is reported with the flag that chooses another, before anything
// starts.
func demoAddrsFree(a demo.Addrs) error {
	var errs []error
	for _, p := range []struct{ flag, network, addr string }{
		{"--web", "tcp", a.Web}, {"--udp", "udp", a.UDP}, {"--admin", "tcp", a.Admin},
	} {
		var c io.Closer
		var err error
		if p.network == "udp" {
			c, err = net.ListenPacket(p.network, p.addr)
		} else {
			c, err = net.Listen(p.network, p.addr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("demo: cannot use %s %s (%w): choose a free address with %s HOST:PORT", p.flag, p.addr, err, p.flag))
			continue
		}
		defer c.Close()
	}
	return errors.Join(errs...)
}
