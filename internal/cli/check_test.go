package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// TestCheckEffective pins what `check --effective` prints and proves the
// output is a config of its own that means the same: fed back to check it
// is valid and has the same config hash.
func TestCheckEffective(t *testing.T) {
	t.Parallel()
	in := filepath.Join("testdata", "check.yaml")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "-c", in, "--effective"}, &stdout, &stderr); code != 0 {
		t.Fatalf("check --effective: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	golden(t, "check-effective.golden", stdout.Bytes())

	orig, err := config.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "effective.yaml")
	if err := os.WriteFile(out, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := Main([]string{"check", "-c", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("check of the effective config: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	again, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.Hash(), orig.Hash(); got != want {
		t.Errorf("effective config hash: got %s, want %s (the original's)", got, want)
	}
	if !strings.Contains(stdout.String(), "config hash "+orig.Hash()[:12]) {
		t.Errorf("check output %q lacks the original's hash %.12s", stdout.String(), orig.Hash())
	}
	// Printing it again changes nothing: the effective config is a fixed point.
	b1, _ := orig.Marshal()
	b2, _ := again.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Errorf("effective config of the effective config differs:\n%s\nvs\n%s", b1, b2)
	}
}

func TestCheckEffectiveInvalid(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  - name: web\n    lisen: 10.0.0.1:80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "-c", bad, "--effective"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout of an invalid config: got %q, want nothing", stdout.String())
	}
	if want := `bad.yaml:3:5: services[0]: unknown field "lisen", did you mean "listen"?`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr: got %q, want it to contain %q", stderr.String(), want)
	}
}

func TestCheckHelpMentionsEffective(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "--effective") {
		t.Errorf("check --help lacks --effective:\n%s", stdout.String())
	}
}

// TestCheckEffectiveExamples: the effective config of every example reads
// back to the same config hash.
func TestCheckEffectiveExamples(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 {
		t.Skip("no examples/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			orig, err := loadChecked(f)
			if err != nil {
				t.Skipf("not a valid config on this branch: %v", err)
			}
			var stdout, stderr bytes.Buffer
			if code := Main([]string{"check", "-c", f, "--effective"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			again, err := config.Parse("effective.yaml", stdout.Bytes())
			if err != nil {
				t.Fatalf("the effective config does not load: %v\n%s", err, stdout.String())
			}
			if got, want := again.Hash(), orig.Hash(); got != want {
				t.Errorf("hash of the effective config: got %.12s, want %.12s", got, want)
			}
		})
	}
}

// TestGuideSamplesMatch keeps the user guide's samples true: the config
// hash that step 3 and step 5 print is the hash of step 2's config, and
// the status table's column headers are the ones status prints. Regenerate
// the samples with the real binary when this fails (the guide says how).
func TestGuideSamplesMatch(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/guide.md")
	if err != nil {
		t.Skip("no docs/guide.md")
	}
	guide := string(b)
	_, rest, ok := strings.Cut(guide, "**Step 2: the config.**")
	if !ok {
		t.Fatal("guide: no step 2")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	yaml, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("guide: no config block in step 2")
	}
	cfg, err := config.Parse("guide.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("step 2's config: %v", err)
	}
	hash := cfg.Hash()[:12]
	for _, want := range []string{"ok (1 services, config hash " + hash + ")", "config " + hash + "\n"} {
		if !strings.Contains(guide, want) {
			t.Errorf("guide lacks %q: step 2's config has hash %s", want, hash)
		}
	}
	var out bytes.Buffer
	renderStatus(&out, testStatus(time.Now()), nil, time.Now())
	// Columns are as wide as their content: compare the words.
	header := func(text string) string {
		for line := range strings.Lines(text) {
			if strings.HasPrefix(line, "  -> RemoteAddress:Port") {
				return strings.Join(strings.Fields(line), " ")
			}
		}
		return ""
	}
	if got, want := header(guide), header(out.String()); got != want {
		t.Errorf("guide's status sample has the columns\n%s\nstatus prints\n%s", got, want)
	}
}

// TestCheckDirector: a file with a director service passes only on a
// kernel that can run the director, and says what the kernel lacks.
// Not parallel: it replaces xdpSupported.
func TestCheckDirector(t *testing.T) {
	file := filepath.Join(t.TempDir(), "director.yaml")
	yaml := "node: { name: lb1 }\ndirector: { interfaces: [lo, nosuch0] }\nservices:\n  - { name: web, listen: 192.0.2.10:80, forwarding: gate, backends: [ { address: 10.0.0.1 } ] }\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f func() error) { xdpSupported = f }(xdpSupported)

	xdpSupported = func() error { return nil }
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"check", "-c", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("check on a kernel with XDP: exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if want := "director.interfaces: nosuch0"; !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "interfaces: lo") {
		t.Errorf("stderr %q: want a warning for nosuch0 only", stderr.String())
	}

	xdpSupported = func() error { return errors.New("xdp: BPF XDP programs: not supported by this kernel") }
	stdout.Reset()
	stderr.Reset()
	if code := Main([]string{"check", "-c", file}, &stdout, &stderr); code != 1 {
		t.Fatalf("check on a kernel without XDP: exit %d, want 1", code)
	}
	if want := "needs the kernel director, which this host cannot run: xdp: BPF XDP programs: not supported by this kernel"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q: want %q", stderr.String(), want)
	}

	// A file without director services does not ask the kernel.
	plain := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(plain, []byte("node: { name: lb1 }\nservices:\n  - { name: web, listen: 127.0.0.1:80, backends: [ { address: 10.0.0.1:80 } ] }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := Main([]string{"check", "-c", plain}, &stdout, &stderr); code != 0 {
		t.Errorf("check of a proxy-only file with XDP missing: exit %d, want 0", code)
	}
}
