package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that a failure is
// reported as Errors, and that a config it accepts is valid and reads back
// unchanged from its effective form.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, cases := range [][]errorCase{decodeCases, validateCases, directorCases} {
		for _, c := range cases {
			f.Add([]byte(c.yaml))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Errorf("got a config together with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("got error %T %q, want non-empty Errors", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Errorf("error without a message: %+v", *e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a config that fails Validate: %v", err)
		}
		for i := range c.Services {
			c.Services[i].ListenAddr() // panics on an address Validate should have refused
		}
		checkRoundTrip(t, c)
	})
}
