//go:build unix

package alert

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The script's child would outlive a kill of the script alone.
	argv := script(t, fmt.Sprintf("sleep 60 &\necho $! > %s\nwait\n", pidFile))
	const timeout = time.Second
	d, _ := newDispatcher(t, Hook{Name: "h", Exec: argv, Timeout: timeout})
	start(t, d)
	began := time.Now()
	d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
	s := settled(t, d, "h", 1)
	// Far below the 60s of sleep, with room for a loaded machine.
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("delivery took %v, want about the %v timeout", took, timeout)
	}
	if want := "exec /bin/sh: killed after the 1s timeout"; s.Failed != 1 || s.LastError != want {
		t.Errorf("got failed %d, last error %q; want 1, %q", s.Failed, s.LastError, want)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not start its child in time: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("the child sleep (pid %d) to die", pid), func() bool { return !alive(pid) })
}

// alive reports whether pid runs; a zombie waiting for init to reap it
// does not.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
