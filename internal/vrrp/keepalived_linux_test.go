package vrrp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// keepalived runs a real keepalived (vrrp_version 3) in one namespace of a
// vlink, for interoperability tests.
type keepalived struct {
	cmd *exec.Cmd
	out *syncbuf.Buffer
}

func startKeepalived(t *testing.T, m rawMode, l *vlink, prio uint8, vip netip.Addr) *keepalived {
	t.Helper()
	dir := t.TempDir()
	unicast := ""
	if m.unicast {
		local, peer := m.side(l, 0)
		unicast = fmt.Sprintf("unicast_src_ip %v\n    unicast_peer {\n        %v\n    }", local, peer)
	}
	conf := fmt.Sprintf(`global_defs {
    router_id fulcrum_interop
    vrrp_version 3
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface %s
    virtual_router_id 51
    priority %d
    advert_int 0.1
    %s
    virtual_ipaddress {
        %v
    }
}
`, l.ifname[0], prio, unicast, vip)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &keepalived{out: &syncbuf.Buffer{}}
	k.cmd = exec.Command("ip", "netns", "exec", l.ns[0], "keepalived",
		"--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", path, "--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"), "--checkers_pid", filepath.Join(dir, "checkers.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("keepalived: %v", err)
	}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("keepalived output:\n%s", k.out)
		}
	})
	return k
}

// stop sends SIGTERM, on which a keepalived master sends priority 0 and
// removes its addresses, and waits for it to exit.
func (k *keepalived) stop() {
	if k.cmd.ProcessState != nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		k.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
}

// holds reports whether the namespace's interface has vip, which
// keepalived adds only while master.
func holds(t *testing.T, l *vlink, side int, vip netip.Addr) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", l.ns[side], "-o", "addr", "show", "dev", l.ifname[side]).CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr show: %v: %s", err, out)
	}
	return strings.Contains(string(out), " "+vip.String()+"/")
}

// TestKeepalivedInterop elects against keepalived: both accept each
// other's adverts (checksum with the pseudo-header, 100ms intervals),
// keepalived's shutdown (priority 0) hands over at once, and a
// lower-priority keepalived stays backup behind us.
func TestKeepalivedInterop(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("skipping: keepalived is not installed (Debian package keepalived)")
	}
	t.Parallel()
	for _, m := range []rawMode{
		{name: "ipv4 multicast", family: IPv4},
		{name: "ipv4 unicast", family: IPv4, unicast: true},
		{name: "ipv6 multicast", family: IPv6},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			l := newVlink(t)
			vip := netip.MustParseAddr("192.0.2.100")
			if m.family == IPv6 {
				vip = netip.MustParseAddr("2001:db8::100")
			}
			kaAddr, _ := m.side(l, 0)

			ka := startKeepalived(t, m, l, 200, vip)
			us := startRaw(t, m, l, 1, 100, false)
			waitFor(t, "keepalived master, us backup", func() bool {
				return holds(t, l, 0, vip) && us.in.State() == Backup && us.in.Status().Master == kaAddr
			})
			time.Sleep(500 * time.Millisecond)
			if s := us.in.Status(); len(s.Dropped) != 0 || s.AdvertsReceived < 3 || s.AddrMismatches != 0 {
				t.Errorf("from keepalived: %d adverts received, dropped %v, %d address mismatches",
					s.AdvertsReceived, s.Dropped, s.AddrMismatches)
			}
			if s := us.in.Status(); s.MasterPriority != 200 || s.MasterInterval != 100*time.Millisecond {
				t.Errorf("keepalived advertises priority %d every %v, want 200 every 100ms", s.MasterPriority, s.MasterInterval)
			}

			drain(us.in) // we may have been master until keepalived was up
			ka.stop()
			if r := nextMaster(t, us.in); r != ReasonMasterLeft {
				t.Errorf("took over for %q, want %q (keepalived's priority 0)", r, ReasonMasterLeft)
			}

			// A lower-priority keepalived must hear us and stay backup; if
			// it rejected our adverts it would be master within ~0.4s.
			ka = startKeepalived(t, m, l, 50, vip)
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				if holds(t, l, 0, vip) {
					t.Fatal("keepalived took the address: it does not accept our adverts")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if us.in.State() != Master {
				t.Errorf("state %v, want master", us.in.State())
			}
			if out := ka.out.String(); strings.Contains(strings.ToLower(out), "checksum") {
				t.Errorf("keepalived complains about checksums:\n%s", out)
			}
			if !strings.Contains(ka.out.String(), "Entering BACKUP STATE") {
				t.Errorf("keepalived never entered backup state")
			}
			us.cancel()
			<-us.done
			us.done <- nil
		})
	}
}
