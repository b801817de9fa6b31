package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestExamplesCheck runs `fulcrum check` on every examples/*.yaml: the
// examples the documentation points at must stay valid.
func TestExamplesCheck(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(binary, "check", "-c", f).CombinedOutput()
			if err != nil {
				t.Errorf("fulcrum check -c %s: %v\n%s", f, err, out)
			}
		})
	}
}
