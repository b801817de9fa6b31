package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/daemon"
)

func newRunCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the load balancer (SIGHUP reloads, SIGTERM drains and stops)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			load := func() (*config.Config, error) { return loadChecked(file) }
			cfg, err := load()
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError(1)
			}
			return runDaemon(cmd, cfg, load)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "/etc/fulcrum/fulcrum.yaml", "config file")
	return cmd
}

// loadChecked loads and validates a config file and checks that it can be
// turned into a runtime.
func loadChecked(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	if err := daemon.Plan(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// runDaemon runs the daemon until SIGINT/SIGTERM, reloading on SIGHUP.
func runDaemon(cmd *cobra.Command, cfg *config.Config, load func() (*config.Config, error)) error {
	level := new(slog.LevelVar)
	log := newLogger(cmd.ErrOrStderr(), cfg.Log.Format, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending; it will read the newest file
			}
		}
	}()
	first := true
	d := daemon.New(daemon.Options{
		Load: func() (*config.Config, error) {
			if first {
				first = false
				return cfg, nil
			}
			return load()
		},
		Log:     log,
		Level:   level,
		Version: version(),
	})
	if err := d.Run(ctx, reload); err != nil {
		log.Error("fulcrum stopped", "error", err)
		return exitError(1)
	}
	return nil
}
