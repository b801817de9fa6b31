package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

func TestRealserverArgs(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "rs.json")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no mode", []string{"192.0.2.1"}, []string{`"mode" not set`}},
		{"NAT", []string{"--mode", "masq", "192.0.2.1"}, []string{"NAT is not offered"}},
		{"every problem at once", []string{"--mode", "nat", "--decap", "gre", "--xdp-mode", "hw", "192.0.2.1", "eth0"},
			[]string{"--mode:", "--decap:", "--xdp-mode:", `VIP "eth0"`}},
		{"no VIP", []string{"--mode", "dr"}, []string{"requires at least 1 arg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"realserver", "up", "--state", state}, tc.args...), &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"realserver", "status", "--state", state}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not set up") {
		t.Errorf("status without state: exit %d, stderr %q", code, stderr.String())
	}
}

// TestRealserverUpStatusDown runs the three commands in a network
// namespace of its own: up in direct mode with an ipvsadm spelling,
// status all ok, status failing once arp_announce is reset, down.
func TestRealserverUpStatusDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for a network namespace")
	}
	ns := fmt.Sprintf("fulcrum-cli-rs-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("skipping: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	state := filepath.Join(t.TempDir(), "rs.json")
	run := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		var code int
		if err := netns.Do(ns, func() error {
			code = Main(append([]string{"realserver"}, append(args, "--state", state)...), &stdout, &stderr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("%s: exit %d, want %d; stdout:\n%s\nstderr:\n%s", args, code, want, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	out := run(0, "up", "--mode", "gate", "192.0.2.9")
	for _, w := range []string{"sysctl net.ipv4.conf.all.arp_ignore: 0 -> 1", "address 192.0.2.9/32 added to lo"} {
		if !strings.Contains(out, w) {
			t.Errorf("up printed no %q:\n%s", w, out)
		}
	}
	out = run(0, "status")
	if !strings.Contains(out, "mode direct") || strings.Contains(out, "FAIL") {
		t.Errorf("status:\n%s", out)
	}
	if err := netns.Do(ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/arp_announce", []byte("0"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if out = run(1, "status"); !strings.Contains(out, "FAIL net.ipv4.conf.all.arp_announce = 2") {
		t.Errorf("status after arp_announce reset:\n%s", out)
	}
	out = run(0, "down")
	if !strings.Contains(out, "address 192.0.2.9/32 removed from lo") || !strings.Contains(out, "left: sysctl net.ipv4.conf.all.arp_announce is 0") {
		t.Errorf("down:\n%s", out)
	}
}
