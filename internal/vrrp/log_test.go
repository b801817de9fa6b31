package vrrp

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// logLines returns the lines of log with msg, as "level=… state=… reason=…".
func logLines(log, msg string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		var keep []string
		for _, kv := range strings.Fields(line) {
			if strings.HasPrefix(kv, "level=") || strings.HasPrefix(kv, "state=") || strings.HasPrefix(kv, "reason=") {
				keep = append(keep, kv)
			}
		}
		out = append(out, strings.Join(keep, " "))
	}
	return out
}

// TestTransitionLog: every transition is logged once, at Warn when it
// means lost redundancy (a fault; taking over from a master that went
// silent) and at Info otherwise.
func TestTransitionLog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		logs := &syncbuf.Buffer{}
		cfg := testConfig("10.0.0.2", 100)
		conn := n.conn(t, "10.0.0.2", nil)
		b := New(cfg, conn, &fakeAnnouncer{}, slog.New(slog.NewTextHandler(logs, nil)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		a := start(t, n, testConfig("10.0.0.1", 200), nil)
		time.Sleep(time.Second)
		synctest.Wait()

		n.setCut(true) // the master is gone, as far as b can tell
		time.Sleep(time.Second)
		synctest.Wait()
		b.SetFault(true)
		synctest.Wait()
		b.SetFault(false)
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		a.stop(t)

		want := []string{
			"level=INFO state=backup reason=startup",
			"level=WARN state=master reason=master_down",
			"level=WARN state=fault reason=fault",
			"level=INFO state=backup reason=fault_cleared",
			"level=WARN state=master reason=master_down", // still alone
			"level=INFO state=initialize reason=shutdown",
		}
		if got := logLines(logs.String(), "state changed"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("transitions logged:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
