package http1

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The test tables are the source of truth for testdata/requests,
// testdata/responses and testdata/chunked: one file per case, named
// "<outcome>_<name>" where outcome is "ok" or the status the proxy answers.
// The files exist so that fuzzers, the net/http differential test and
// end-to-end tests against the running proxy replay the same messages.
var update = flag.Bool("update", false, "rewrite the testdata corpus from the test tables")

type corpusFile struct {
	name string // file name
	data []byte
}

func outcome(status int) string {
	if status == 0 {
		return "ok"
	}
	return strconv.Itoa(status)
}

// syncCorpus rewrites dir from want with -update, and otherwise fails when
// the directory and the table have drifted apart.
func syncCorpus(t *testing.T, dir string, want []corpusFile) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range want {
			if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	got := readCorpus(t, dir)
	names := map[string][]byte{}
	for _, f := range got {
		names[f.name] = f.data
	}
	for _, f := range want {
		data, ok := names[f.name]
		switch {
		case !ok:
			t.Errorf("%s/%s missing; run go test -run %s -update", dir, f.name, t.Name())
		case string(data) != string(f.data):
			t.Errorf("%s/%s differs from its table entry; run go test -run %s -update", dir, f.name, t.Name())
		}
		delete(names, f.name)
	}
	for n := range names {
		t.Errorf("%s/%s has no table entry; run go test -run %s -update", dir, n, t.Name())
	}
}

func readCorpus(tb testing.TB, dir string) []corpusFile {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []corpusFile
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, corpusFile{e.Name(), b})
	}
	if len(out) == 0 {
		tb.Fatalf("no corpus in %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// fileOutcome returns the status a corpus file name promises (0 for "ok").
func fileOutcome(tb testing.TB, name string) int {
	o, _, _ := strings.Cut(name, "_")
	if o == "ok" {
		return 0
	}
	n, err := strconv.Atoi(o)
	if err != nil {
		tb.Fatalf("corpus file %s: outcome %q is neither ok nor a status", name, o)
	}
	return n
}
