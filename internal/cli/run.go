package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/daemon"
	"github.com/fulcrum-lb/fulcrum/internal/sdnotify"
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
	configFlag(cmd, &file)
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
	notify, err := sdnotify.New()
	if err != nil {
		log.Warn("not notifying systemd", "error", err)
	}
	tell := func(err error) {
		if err != nil {
			log.Warn("notifying systemd", "error", err)
		}
	}
	var stopping atomic.Bool
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
		Ready:   func() { tell(notify.Ready(servingStatus(len(cfg.Services), cfg.Hash()))) },
		Reloading: func() {
			tell(notify.Reloading("reloading " + cfg.File))
		},
		Reloaded: func(running *config.Config, hash string, err error) {
			st := servingStatus(len(running.Services), hash)
			if err != nil {
				line, _, _ := strings.Cut(err.Error(), "\n")
				st = "reload failed, running the previous config (" + line + "); " + st
			}
			tell(notify.Ready(st))
		},
		Stopping: func() {
			stopping.Store(true)
			tell(notify.Stopping("stopping: listeners closed, draining connections"))
		},
	})
	wctx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	go notify.RunWatchdog(wctx, func(ctx context.Context) error {
		if stopping.Load() {
			// Draining is bounded by shutdown.drain_timeout; the Run loop
			// no longer answers while it lasts.
			return nil
		}
		return d.Alive(ctx)
	})
	if err := d.Run(ctx, reload); err != nil {
		log.Error("fulcrum stopped", "error", err)
		return exitError(1)
	}
	return nil
}

// servingStatus is the line `systemctl status` shows while fulcrum runs.
func servingStatus(services int, hash string) string {
	return fmt.Sprintf("serving %d services, config hash %.12s", services, hash)
}
