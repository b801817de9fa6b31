// Package sdnotify tells systemd about the daemon's state, as sd_notify(3)
// does, for units of Type=notify: READY=1 once it serves, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 on the way out, STATUS= for
// `systemctl status`, and WATCHDOG=1 keep-alives when WatchdogSec= is set.
//
// It speaks the protocol directly (one datagram to $NOTIFY_SOCKET) so that
// fulcrum needs no libsystemd.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to systemd. A nil *Notifier, as New returns
// outside systemd, accepts every call and sends nothing. Its methods may be
// called from any goroutine.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// New reads $NOTIFY_SOCKET and $WATCHDOG_USEC and removes them (and
// $WATCHDOG_PID) from the environment, so that the commands fulcrum runs
// (health checks, alerts) cannot speak for it. It returns nil when systemd
// did not ask for notifications.
func New() (*Notifier, error) {
	socket := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	for _, k := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(k)
	}
	if socket == "" {
		return nil, nil
	}
	// A path, or "@name" for an abstract socket; Go maps the leading '@'
	// to the abstract namespace itself.
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET %q: want an absolute path or @abstract name", socket)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}
	if usec != "" && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		us, err := strconv.ParseUint(usec, 10, 63)
		if err != nil || us == 0 {
			return nil, fmt.Errorf("sdnotify: WATCHDOG_USEC %q: want a positive number of microseconds", usec)
		}
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n, nil
}

// Send sends one notification made of the given KEY=VALUE lines.
func (n *Notifier) Send(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if !strings.Contains(l, "=") {
			return fmt.Errorf("sdnotify: %q is not KEY=VALUE", l)
		}
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready reports that the daemon serves; after a reload it ends the
// reload.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", status1(status))
}

// Reloading reports the start of a reload. MONOTONIC_USEC lets systemd
// (Type=notify-reload) tell this reload from an earlier one.
func (n *Notifier) Reloading(status string) error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), status1(status))
}

// Stopping reports that the daemon is shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Send("STOPPING=1", status1(status))
}

// Status sets the free-form line `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.Send(status1(status))
}

// WatchdogInterval is how often WATCHDOG=1 must arrive (WatchdogSec=);
// 0 when systemd does not watch this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Watchdog sends one keep-alive.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// status1 keeps a status to one line: a newline would start a new
// assignment.
func status1(s string) string {
	return "STATUS=" + strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", " ").Replace(s)
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// Never fails on Linux; a zero makes systemd ignore the field.
		return 0
	}
	return ts.Nano() / 1e3
}
