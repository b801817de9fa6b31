package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
)

// TestDirectorAttachesAndDetaches runs the real kernel director: the
// XDP program is on the configured interface while a director service
// exists (the kernel says so, and status with the mode), and off it once
// the reload that removes the last one, or the daemon's stop, is done.
// The interface is a veth pair of its own, down: no packet moves.
func TestDirectorAttachesAndDetaches(t *testing.T) {
	needKernelDirector(t)
	t.Parallel()
	ifname := newVeth(t, "fdc")
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
