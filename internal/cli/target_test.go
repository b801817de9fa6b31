package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRefusesWhatRunRefuses: a file that run refuses for its secret
// files, check refuses too with the same words, so that systemd's
// ExecReload=fulcrum check is the truth.
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"token": "0123456789abcdef-token\n",
		"key":   "0123456789abcdef-key\n",
		"short": "too-short\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The addresses are not this host's: should run ever get past the
	// config, it fails to bind instead of running on.
	cfg := func(token, key string) string {
		return "node: { name: lb1 }\nadmin: { listen: 192.0.2.1:1, token_file: " + token + " }\n" +
			"services: [{ name: web, listen: 192.0.2.1:2, backends: [{ address: 127.0.0.1:3 }] }]\n" +
			"ha:\n  groups:\n    - { name: web, interface: lo, vrid: 51, vips: [192.0.2.5/24], priority: { lb1: 100 }, auth_key_file: " + key + " }\n"
	}
	tests := []struct {
		name, yaml, err string
	}{
		{"token file missing", cfg("nope", "key"), "admin.token_file: open " + filepath.Join(dir, "nope") + ": no such file"},
		{"token too short", cfg("short", "key"), "admin.token_file: " + filepath.Join(dir, "short") + " holds 9 bytes; want a secret of at least 16"},
		{"auth key missing", cfg("token", "nope"), "ha.groups[0].auth_key_file: open " + filepath.Join(dir, "nope") + ": no such file"},
		{"auth key too short", cfg("token", "short"), "ha.groups[0].auth_key_file: " + filepath.Join(dir, "short") + " holds 9 bytes"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, "bad"+string(rune('0'+i))+".yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var verdicts []string
			for _, command := range []string{"check", "run"} {
				var stdout, stderr bytes.Buffer
				if code := Main([]string{command, "-c", file}, &stdout, &stderr); code != 1 {
					t.Errorf("%s: exit %d, want 1; stderr %q", command, code, stderr.String())
				}
				if !strings.Contains(stderr.String(), tt.err) {
					t.Errorf("%s: stderr %q, want %q in it", command, stderr.String(), tt.err)
				}
				verdicts = append(verdicts, stderr.String())
			}
			if verdicts[0] != verdicts[1] {
				t.Errorf("check said %q, run said %q; want the same", verdicts[0], verdicts[1])
			}
		})
	}
	file := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(file, []byte(cfg("token", "key")), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "-c", file}, &stdout, &stderr); code != 0 {
		t.Errorf("check of the valid file: exit %d, want 0; stderr %q", code, stderr.String())
	}
}

// TestControlCommandsFindTheDefaultConfig: without -c, status, backend,
// reload and ha read the admin address and token from the config run and
// check load by default; without that file they look at 127.0.0.1:9900.
// Not parallel: it points the default config path at a test file.
func TestControlCommandsFindTheDefaultConfig(t *testing.T) {
	f := &fakeNode{}
	_, cfgFile := startFakeNode(t, f)
	saved := defaultConfigPath
	t.Cleanup(func() { defaultConfigPath = saved })
	defaultConfigPath = cfgFile

	for _, tt := range []struct {
		args []string
		call string
	}{
		{[]string{"backend", "drain", "web", "10.0.0.1:80"}, "state web 10.0.0.1:80 drain"},
		{[]string{"reload"}, "reload"},
		{[]string{"ha", "release", "web"}, "release web"},
		{[]string{"status"}, ""},
	} {
		f.mu.Lock()
		f.calls = nil
		f.mu.Unlock()
		var stdout, stderr bytes.Buffer
		if code := Main(tt.args, &stdout, &stderr); code != 0 {
			t.Errorf("%q: exit %d, want 0; stderr %q", tt.args, code, stderr.String())
			continue
		}
		f.mu.Lock()
		calls := f.calls
		f.mu.Unlock()
		if tt.call != "" && (len(calls) != 1 || calls[0] != tt.call) {
			t.Errorf("%q: calls %q, want [%q]", tt.args, calls, tt.call)
		}
	}

	// The default config shows in the help of run and of the control
	// commands.
	var stdout, stderr bytes.Buffer
	Main([]string{"backend", "drain", "--help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), cfgFile) {
		t.Errorf("backend drain --help does not name the default config %s:\n%s", cfgFile, stdout.String())
	}

	defaultConfigPath = filepath.Join(t.TempDir(), "none.yaml")
	if addr, err := adminAddr("", ""); addr != defaultAdmin || err != nil {
		t.Errorf("without a config: got %q, %v; want %s", addr, err, defaultAdmin)
	}
	// A -c that does not exist is an error, not a silent default.
	if _, err := adminAddr("", defaultConfigPath); err == nil {
		t.Errorf("-c of a missing file: got no error")
	}
}

// TestCheckWarnsAboutAMissingInterface: an HA interface this host lacks is
// what run refuses here; check warns and still exits 0, since the file may
// be meant for another node.
func TestCheckWarnsAboutAMissingInterface(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f.yaml")
	data := "node: { name: lb1 }\nservices: [{ name: web, listen: 192.0.2.1:2, backends: [{ address: 127.0.0.1:3 }] }]\n" +
		"ha:\n  groups:\n    - { name: web, interface: nosuch0, vrid: 51, vips: [192.0.2.5/24], priority: { lb1: 100 } }\n" +
		"    - { name: lo, interface: lo, vrid: 52, vips: [192.0.2.6/24], priority: { lb1: 100 } }\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "-c", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, stderr.String())
	}
	if want := file + ": warning: ha group web: vrrp: interface nosuch0: "; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q in it", stderr.String(), want)
	}
	if strings.Contains(stderr.String(), "ha group lo") {
		t.Errorf("stderr %q warns about lo, which exists with 127.0.0.1", stderr.String())
	}
	if !strings.Contains(stdout.String(), ": ok (1 services") {
		t.Errorf("stdout %q, want ok", stdout.String())
	}
}
