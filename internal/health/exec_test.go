package health

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func execSpec(timeout time.Duration, argv ...string) Spec {
	return Spec{Type: "exec", Interval: time.Second, Timeout: timeout, Rise: 1, Fall: 1, Command: argv}
}

func TestExecCheck(t *testing.T) {
	t.Parallel()
	target := Target{
		Addr:    netip.MustParseAddrPort("127.0.0.1:8080"),
		Backend: netip.MustParseAddrPort("10.0.0.5:80"),
		Service: "web",
	}
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"exit 0", []string{"true"}, ""},
		{"exit 1", []string{"sh", "-c", "echo; echo '  bad thing  ' >&2; echo more; exit 1"}, "exit status 1: bad thing"},
		{"exit 2, no output", []string{"sh", "-c", "exit 2"}, "exit status 2"},
		{"environment", []string{"sh", "-c", `echo "$FULCRUM_SERVICE $FULCRUM_BACKEND $FULCRUM_BACKEND_HOST $FULCRUM_BACKEND_PORT $FULCRUM_CHECK_ADDR ${HOME-nohome} ${PATH:+path}"; exit 3`},
			"exit status 3: web 10.0.0.5:80 10.0.0.5 80 127.0.0.1:8080 nohome path"},
		{"not found", []string{"/nonexistent/check"}, "start: fork/exec /nonexistent/check: no such file or directory"},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, "signal: terminated"},
		{"long line", []string{"sh", "-c", "printf '%0300d' 0; exit 1"}, "exit status 1: " + strings.Repeat("0", 256) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := reason(check(t, execSpec(5*time.Second, tt.argv...), target)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// dead reports whether pid is gone or a zombie waiting for its reaper.
func dead(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

func TestExecTimeoutKillsTheGroup(t *testing.T) {
	t.Parallel()
	pids := filepath.Join(t.TempDir(), "pids")
	// A child (the subshell) and a grandchild (its sleep), both recorded.
	script := `( sleep 60 & echo $! >> "$0"; wait ) & echo $! >> "$0"; sleep 60`
	start := time.Now()
	got := reason(check(t, execSpec(2*time.Second, "sh", "-c", script, pids), Target{Addr: netip.MustParseAddrPort("127.0.0.1:1")}))
	if got != "timeout after 2s" {
		t.Errorf("got %q, want %q", got, "timeout after 2s")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("check took %v, want it to end soon after the 1s timeout", d)
	}
	data, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		t.Fatalf("got pids %q, want a child's and a grandchild's", fields)
	}
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !dead(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !dead(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("process %d: got alive after the timeout, want killed", pid)
		}
	}
}

func TestExecOutputFlood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"flood until killed", []string{"yes"}, "timeout after 500ms: y"},
		{"flood then exit", []string{"sh", "-c", "yes | head -c 2000000; exit 4"}, "exit status 4: y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			got := reason(check(t, execSpec(500*time.Millisecond, tt.argv...), Target{Addr: netip.MustParseAddrPort("127.0.0.1:1")}))
			if tt.name == "flood then exit" && strings.HasPrefix(got, "timeout") {
				t.Skipf("got %q: the machine is too slow to write 2 MB in 500ms", got)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("check took %v, want it bounded by the 500ms timeout", d)
			}
		})
	}
}

// An exit status decides even when a process that left the group keeps
// the output open: the check waits for it no longer than its timeout.
func TestExecEscapedProcessHoldsOutput(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid(1) is not installed")
	}
	start := time.Now()
	got := reason(check(t, execSpec(500*time.Millisecond, "sh", "-c", "setsid sleep 3 & echo started; exit 0"), Target{Addr: netip.MustParseAddrPort("127.0.0.1:1")}))
	if got != "" {
		t.Errorf("got %q, want up (exit 0)", got)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("check took %v, want it to stop waiting for the output at the 500ms timeout", d)
	}
}
