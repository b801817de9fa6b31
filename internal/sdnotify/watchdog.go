package sdnotify

import (
	"context"
	"time"
)

// RunWatchdog sends WATCHDOG=1 at half the watchdog interval for as long
// as alive answers within that half, until ctx is done. alive should prove
// the daemon's main loop turns, not only that the process exists: when it
// stops answering the keep-alives stop and systemd restarts the unit.
// Without a watchdog interval RunWatchdog returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, alive func(context.Context) error) {
	every := n.WatchdogInterval() / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, every)
		err := alive(actx)
		cancel()
		if err == nil {
			_ = n.Watchdog()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
