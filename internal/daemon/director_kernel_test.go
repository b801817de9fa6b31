package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
)

// TestDirectorAttachesAndDetaches runs the real kernel director: the
// XDP program is on the configured interface while a director service
// exists (the kernel says so, and status with the mode), and off it once
// the reload that removes the last one, or the daemon's stop, is done.
// The interface is a veth pair of its own, down: no packet moves.
func TestDirectorAttachesAndDetaches(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: XDP")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	if err := xdp.Supported(); err != nil {
		t.Skipf("the kernel cannot run the director: %v", err)
	}
	t.Parallel()
	ifname := fmt.Sprintf("fdc%d%03x", os.Getpid()%100000, rand.IntN(1<<12))
	if out, err := exec.Command("ip", "link", "add", ifname, "type", "veth", "peer", "name", ifname+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", ifname).Run() })
	attached := func() string {
		out, err := exec.Command("ip", "-d", "link", "show", "dev", ifname).CombinedOutput()
		if err != nil {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		switch s := string(out); {
		case strings.Contains(s, "xdpgeneric"):
			return "generic"
		case strings.Contains(s, "xdp"):
			return "attached"
		}
		return ""
	}

	adminAddr, proxied := freeTCP(t), freeTCP(t)
	b1 := echoBackend(t, "b1")
	withDirector := strings.Replace(directorYAML(adminAddr, "direct", "", proxied, b1), "interfaces: [lo]",
		"interfaces: ["+ifname+"], xdp_mode: generic, flow_table_size: 4096", 1)
	td := startDaemonOpts(t, withDirector, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})

	if got := attached(); got != "generic" {
		t.Fatalf("with a director service: the kernel shows %q on %s, want generic XDP", got, ifname)
	}
	st := td.d.Status()
	if st.Director == nil || len(st.Director.Interfaces) != 1 || st.Director.Interfaces[0].Name != ifname || st.Director.Interfaces[0].Mode != "generic" {
		t.Errorf("status director: got %+v, want %s generic", st.Director, ifname)
	}
	if st.Director != nil && (st.Director.Services != 1 || st.Director.Error != "") {
		t.Errorf("status director: %d services, error %q; want 1 and none", st.Director.Services, st.Director.Error)
	}

	// The last director service goes: the program is detached.
	noDirector := fmt.Sprintf("node: { name: lb1 }\nadmin: { listen: %q }\nservices:\n%s", adminAddr, svcYAML("proxied", proxied, b1))
	if err := td.reload(noDirector); err != nil {
		t.Fatal(err)
	}
	if got := attached(); got != "" {
		t.Errorf("after the reload without director services: the kernel shows %q on %s, want no XDP", got, ifname)
	}

	// Back, then the daemon stops: detached again.
	if err := td.reload(withDirector); err != nil {
		t.Fatal(err)
	}
	if got := attached(); got != "generic" {
		t.Fatalf("after the director service came back: %q, want generic", got)
	}
	td.stop(t)
	if got := attached(); got != "" {
		t.Errorf("after the daemon stopped: the kernel shows %q on %s, want no XDP", got, ifname)
	}
}
