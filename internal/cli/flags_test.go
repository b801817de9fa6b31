package cli

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOptionalFlagValues: --watch and --rate take their value as users
// type it, "--watch 1s", as well as "--watch=1s", and alone keep their
// default.
func TestOptionalFlagValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args        []string
		watch, rate time.Duration
		json        bool
		err         string
	}{
		{args: []string{"--watch", "1s"}, watch: time.Second},
		{args: []string{"-w", "500ms", "--json"}, watch: 500 * time.Millisecond, json: true},
		{args: []string{"--watch=3s"}, watch: 3 * time.Second},
		{args: []string{"--watch"}, watch: 2 * time.Second},
		{args: []string{"--watch", "--json"}, watch: 2 * time.Second, json: true},
		{args: []string{"-w"}, watch: 2 * time.Second},
		{args: []string{"--rate", "1s"}, rate: time.Second},
		{args: []string{"--rate", "250ms", "--admin", "127.0.0.1:1"}, rate: 250 * time.Millisecond},
		{args: []string{"--rate"}, rate: time.Second},
		{args: []string{"--watch", "soon"}, err: `unknown command "soon"`},
		{args: []string{"--watch", "1"}, err: `missing unit in duration`},
		{args: []string{"--", "--watch", "1s"}, err: `unknown command "--watch"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			root := newRoot(io.Discard, io.Discard)
			args := joinOptionalValues(root, append([]string{"status"}, tt.args...))
			cmd, rest, err := root.Find(args)
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.ParseFlags(rest)
			if err == nil {
				err = cmd.ValidateArgs(cmd.Flags().Args())
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("%q: got error %v, want %q", args, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", args, err)
			}
			watch, _ := cmd.Flags().GetDuration("watch")
			rate, _ := cmd.Flags().GetDuration("rate")
			asJSON, _ := cmd.Flags().GetBool("json")
			if watch != tt.watch || rate != tt.rate || asJSON != tt.json {
				t.Errorf("%q: got watch %s rate %s json %v, want %s %s %v", args, watch, rate, asJSON, tt.watch, tt.rate, tt.json)
			}
		})
	}
	// Words after "--" and other commands' arguments are left alone.
	root := newRoot(io.Discard, io.Discard)
	for _, args := range [][]string{
		{"backend", "weight", "web", "10.0.0.1:80", "5"},
		{"status", "--", "--watch", "1s"},
	} {
		if got := joinOptionalValues(root, args); !slices.Equal(got, args) {
			t.Errorf("joinOptionalValues(%q): got %q, want it unchanged", args, got)
		}
	}
}
