package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const monAlert = "../../dist/mon/fulcrum-mon-alert"

// lvsAlert does what mon's lvs.alert does with its arguments (the same
// getopts string, the same ipvsadm command for -u and without it), but
// prints the command to a log instead of running ipvsadm, with mon's -s,
// -g, -h, -t and the summary line it read.
const lvsAlert = `#!/bin/sh
u=
while getopts s:g:h:t:l:P:V:R:W:F:u o; do
	case $o in
	s) s=$OPTARG ;; g) g=$OPTARG ;; h) h=$OPTARG ;; t) t=$OPTARG ;;
	P) P=$OPTARG ;; V) V=$OPTARG ;; R) R=$OPTARG ;; W) W=$OPTARG ;; F) F=$OPTARG ;;
	u) u=1 ;; *) exit 2 ;;
	esac
done
read -r summary
case $F in nat) fwd=-m ;; tun) fwd=-i ;; *) fwd=-g ;; esac
case $P in tcp) p=-t ;; *) p=-u ;; esac
if [ -n "$u" ]; then cmd="ipvsadm -a $p $V -r $R -w $W $fwd"; else cmd="ipvsadm -d $p $V -r $R"; fi
echo "$s|$g|$h|$t|$summary|$cmd" >> "$LOG"
`

// TestMonAlertWrapper runs mon's lvs.alert calling convention through
// dist/mon/fulcrum-mon-alert from a real node's alert hook: a backend
// going down calls it as mon's alert, coming back as mon's upalert (-u).
func TestMonAlertWrapper(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("date"); err != nil {
		t.Skip("no date(1)")
	}
	b1, b2 := startWebBackend(t, "b1"), startWebBackend(t, "b2")
	dir := t.TempDir()
	log := filepath.Join(dir, "ipvsadm.log")
	script := filepath.Join(dir, "lvs.alert")
	// The hook's environment has only PATH and FULCRUM_*: the log's path
	// is baked into the script.
	if err := os.WriteFile(script, []byte(strings.Replace(lvsAlert, `"$LOG"`, log, 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper, err := filepath.Abs(monAlert)
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t, "tcp")
	n := startNode(t, fmt.Sprintf(`node: { name: lb1 }
admin: { listen: ADMIN }
services:
  - name: web
    listen: %s
    health: { type: tcp, interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }
    backends: [ { address: %s }, { address: %s } ]
alerts:
  - name: lvs
    events: [backend]
    services: [web]
    exec: [%s, %s, -P, tcp, -V, %s, -F, tun, -W, "1"]
`, listen, b1.addr, b2.addr, wrapper, script, listen))

	start := time.Now().Unix()
	calls := func(n int) func() bool {
		return func() bool {
			data, _ := os.ReadFile(log)
			return strings.Count(string(data), "\n") >= n
		}
	}
	// Wait for each call itself: the status can show the backend down
	// before its first check has run.
	b1.stop()
	waitFor(t, "the down alert", 10*time.Second, calls(1))
	b1.start()
	waitFor(t, "the up alert", 10*time.Second, calls(2))
	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	host := strings.Split(b1.addr, ":")[0]
	want := []string{
		"web|web|" + host + "|T|" + host + "|ipvsadm -d -t " + listen + " -r " + b1.addr,
		"web|web|" + host + "|T|" + host + "|ipvsadm -a -t " + listen + " -r " + b1.addr + " -w 1 -i",
	}
	if len(lines) != 2 {
		t.Fatalf("lvs.alert calls:\n%s\nwant 2:\n%s", data, strings.Join(want, "\n"))
	}
	for i, line := range lines {
		f := strings.Split(line, "|")
		if len(f) != 6 {
			t.Errorf("call %d: %q, want 6 fields", i, line)
			continue
		}
		if at, err := strconv.ParseInt(f[3], 10, 64); err != nil || at < start-1 || at > time.Now().Unix()+1 {
			t.Errorf("call %d: -t %q, want the event's time in seconds since the epoch", i, f[3])
		}
		f[3] = "T"
		if got := strings.Join(f, "|"); got != want[i] {
			t.Errorf("call %d:\ngot  %s\nwant %s", i, got, want[i])
		}
	}
	// The hook counts a delivery once the script has exited.
	waitFor(t, "two deliveries", 10*time.Second, func() bool {
		h := n.status().Alerts.Hooks
		return len(h) == 1 && h[0].Sent+h[0].Failed == 2
	})
	if hooks := n.status().Alerts.Hooks; hooks[0].Failed != 0 {
		t.Errorf("alert hooks: got %+v, want lvs with 2 sent, 0 failed", hooks)
	}
}

// TestMonAlertWrapperLint runs shellcheck on the wrapper as POSIX sh.
func TestMonAlertWrapperLint(t *testing.T) {
	t.Parallel()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck not installed (apt-get install shellcheck); skipping the lint of " + monAlert)
	}
	if out, err := exec.Command(sc, "-s", "sh", monAlert).CombinedOutput(); err != nil {
		t.Errorf("shellcheck -s sh %s: %v\n%s", monAlert, err, out)
	}
}
