package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRefusesAnUnwritableAccessLog: an access log whose directory
// fulcrum may not write to (a read-only mount, as systemd's
// ProtectSystem=strict makes of /var/log, or missing permissions) fails
// run when it opens the file; check says so first, with the field, so that
// the unit's ExecReload check is the truth.
func TestCheckRefusesAnUnwritableAccessLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "fulcrum.yaml")
	if err := os.WriteFile(cfg, []byte(`services:
  - name: web
    listen: 192.0.2.1:80
    protocol: http
    backends: [ { address: 127.0.0.1:9001 } ]
    http: { access_log: { path: `+filepath.Join(logs, "access.log")+` } }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// As root, permissions do not stop us: mount a read-only file system on
	// the directory in a mount namespace of our own.
	readOnly := func(args ...string) *exec.Cmd {
		if os.Geteuid() != 0 {
			return exec.Command(binary, args...)
		}
		return exec.Command("unshare", append([]string{"-m", "sh", "-c", `mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"`, "sh", logs, binary}, args...)...)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(logs, 0o555); err != nil {
			t.Fatal(err)
		}
	} else if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("root without unshare(1): cannot make a read-only directory")
	}

	if out, err := exec.Command(binary, "check", "-c", cfg).CombinedOutput(); os.Geteuid() == 0 && err != nil {
		t.Fatalf("check with a writable directory: %v\n%s", err, out)
	}
	out, err := readOnly("check", "-c", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("check with a read-only log directory: got %v, want exit status 1\n%s", err, out)
	}
	if want := "services[0].http.access_log.path: " + filepath.Join(logs, "access.log") + " cannot be written"; !strings.Contains(string(out), want) {
		t.Errorf("check said %q, want %q in it", out, want)
	}
}
