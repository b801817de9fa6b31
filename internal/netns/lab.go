//go:build linux

package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The helpers below build test labs with the ip command (iproute2). They
// fail or skip the test they are given; call them from its goroutine.

// Require skips t unless it can build labs: it runs as root and the ip
// command is installed.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (iproute2)")
	}
}

// IP runs `ip args...` and returns its output; a failure fails t with the
// command and what it printed.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Add creates the namespace name, deleted when t ends whatever happens;
// a leftover of that name (from a killed run) is deleted first.
func Add(t testing.TB, name string) {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run()
	IP(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
}

// WaitUp waits until dev in namespace ns is operationally up, failing t
// after 5 s. A veth transmits only once link watch has seen its carrier,
// up to a second after it is set up, and drops what is sent before.
func WaitUp(t testing.TB, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "dev", dev).CombinedOutput()
		if err == nil && strings.Contains(string(out), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not up after 5s: %s", dev, ns, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
