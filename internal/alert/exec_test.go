package alert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExecEnvironmentAndStdin(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 6, 7, 8, 9, 500, time.UTC)
	tests := []struct {
		name string
		ev   Event
		want map[string]string
	}{{
		name: "backend down",
		ev: Event{Kind: "backend", Service: "web", Backend: "10.0.0.5:80", State: "down", PrevState: "up",
			Reason: `http: got 503 "Service Unavailable"`, Node: "lb1", Time: at},
		want: map[string]string{
			"FULCRUM_EVENT": "backend", "FULCRUM_SERVICE": "web", "FULCRUM_BACKEND": "10.0.0.5:80",
			"FULCRUM_BACKEND_HOST": "10.0.0.5", "FULCRUM_BACKEND_PORT": "80", "FULCRUM_STATE": "down",
			"FULCRUM_PREV_STATE": "up", "FULCRUM_REASON": `http: got 503 "Service Unavailable"`,
			"FULCRUM_NODE": "lb1", "FULCRUM_TIME": "2024-05-06T07:08:09Z",
		},
	}, {
		name: "IPv6 backend",
		ev:   Event{Kind: "backend", Service: "dns", Backend: "[2001:db8::1]:53", State: "up", PrevState: "down", Time: at},
		want: map[string]string{
			"FULCRUM_EVENT": "backend", "FULCRUM_SERVICE": "dns", "FULCRUM_BACKEND": "[2001:db8::1]:53",
			"FULCRUM_BACKEND_HOST": "2001:db8::1", "FULCRUM_BACKEND_PORT": "53", "FULCRUM_STATE": "up",
			"FULCRUM_PREV_STATE": "down", "FULCRUM_REASON": "", "FULCRUM_NODE": "", "FULCRUM_TIME": "2024-05-06T07:08:09Z",
		},
	}, {
		name: "extra keys",
		ev: Event{Kind: "ha", State: "master", PrevState: "backup", Node: "lb2", Time: at.In(time.FixedZone("", 2*3600)),
			Extra: map[string]string{"vrid": "51", "old-priority": "100", "state": "not the state", "": "nameless"}},
		want: map[string]string{
			"FULCRUM_EVENT": "ha", "FULCRUM_SERVICE": "", "FULCRUM_BACKEND": "", "FULCRUM_BACKEND_HOST": "",
			"FULCRUM_BACKEND_PORT": "", "FULCRUM_STATE": "master", "FULCRUM_PREV_STATE": "backup",
			"FULCRUM_REASON": "", "FULCRUM_NODE": "lb2", "FULCRUM_TIME": "2024-05-06T09:08:09+02:00",
			"FULCRUM_VRID": "51", "FULCRUM_OLD_PRIORITY": "100",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			envFile, stdinFile := filepath.Join(dir, "env"), filepath.Join(dir, "stdin")
			d, _ := newDispatcher(t, Hook{Name: "script", Exec: script(t, fmt.Sprintf("env > %s\ncat > %s\n", envFile, stdinFile))})
			start(t, d)
			d.Notify(tt.ev)
			if s := settled(t, d, "script", 1); s.Sent != 1 {
				t.Fatalf("got sent %d, failed %d (%s); want 1 sent", s.Sent, s.Failed, s.LastError)
			}

			env := readEnv(t, envFile)
			got := map[string]string{}
			for k, v := range env {
				if strings.HasPrefix(k, "FULCRUM_") {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FULCRUM_ variables (-want +got):\n%s", diff)
			}
			if got, want := env["PATH"], os.Getenv("PATH"); got != want {
				t.Errorf("PATH: got %q, want %q", got, want)
			}
			// Only PATH comes from fulcrum's environment.
			if home, ok := env["HOME"]; ok && os.Getenv("HOME") != "" {
				t.Errorf("HOME: got %q, want it unset", home)
			}

			raw, err := os.ReadFile(stdinFile)
			if err != nil {
				t.Fatal(err)
			}
			var ev Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("stdin %q: %v", raw, err)
			}
			if !ev.Time.Equal(tt.ev.Time) {
				t.Errorf("stdin time: got %v, want %v", ev.Time, tt.ev.Time)
			}
			ev.Time = tt.ev.Time
			if diff := cmp.Diff(tt.ev, ev); diff != "" {
				t.Errorf("event on stdin (-want +got):\n%s", diff)
			}
		})
	}
}

// readEnv parses the output of env(1); no value in the tests has a
// newline.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

func TestExecFailure(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	failing := script(t, "echo starting\necho 'backend db1 unknown' >&2\nexit 3\n")
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{name: "exit status", argv: failing, want: "exec /bin/sh: exit status 3: backend db1 unknown"},
		{name: "killed by a signal", argv: []string{"sh", "-c", "kill -TERM $$"}, want: "exec sh: signal: terminated"},
		{name: "no such program", argv: []string{missing}, want: "exec " + missing + ": fork/exec " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, logs := newDispatcher(t, Hook{Name: "h", Exec: tt.argv})
			start(t, d)
			d.Notify(backendEvent("db", "10.0.0.9:5432", "down"))
			s := settled(t, d, "h", 1)
			if s.Sent != 0 || s.Failed != 1 || s.LastError != tt.want {
				t.Errorf("got sent %d, failed %d, last error %q; want 0, 1, %q", s.Sent, s.Failed, s.LastError, tt.want)
			}
			if s.LastFailed.IsZero() {
				t.Errorf("LastFailed: got zero, want the time of the failure")
			}
			waitFor(t, "the failure log", func() bool { return len(logs.lines("alert hook failed")) == 1 })
		})
	}
}

func TestExecOutputFlood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		argv    []string
		timeout time.Duration
		sent    uint64
	}{
		// Without an end: bounded by the timeout, memory by the cap.
		{name: "endless", argv: []string{"yes"}, timeout: 500 * time.Millisecond},
		// With one: draining the pipe lets the program finish.
		{name: "10 MB", argv: []string{"sh", "-c", "yes | head -c 10000000"}, timeout: time.Minute, sent: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, logs := newDispatcher(t, Hook{Name: "h", Exec: tt.argv, Timeout: tt.timeout})
			start(t, d)
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
			if s := settled(t, d, "h", 1); s.Sent != tt.sent {
				t.Errorf("got sent %d, failed %d (%s); want %d sent", s.Sent, s.Failed, s.LastError, tt.sent)
			}
			msg := "alert hook delivered"
			if tt.sent == 0 {
				msg = "alert hook failed"
			}
			var line string
			waitFor(t, "the delivery log", func() bool {
				got := logs.lines(msg)
				if len(got) == 1 {
					line = got[0]
				}
				return line != ""
			})
			if !strings.Contains(line, "[output cut at 4 KiB]") || len(line) > 2*outputLimit+1024 {
				t.Errorf("log line of %d bytes, want at most the 4 KiB of output (escaped) and a cut mark: %.300q...", len(line), line)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, want string }{
		{"vrid", "VRID"},
		{"old-priority", "OLD_PRIORITY"},
		{"Already_Fine9", "ALREADY_FINE9"},
		{"a.b c", "A_B_C"},
		{"état", "_TAT"},
	}
	for _, tt := range tests {
		if got := envName(tt.key); got != tt.want {
			t.Errorf("envName(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
}
