package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

// fakeNode is an admin API whose controller records what it is asked.
type fakeNode struct {
	mu     sync.Mutex
	calls  []string
	reject []string // ReloadConfig's answer when set
}

func (f *fakeNode) Status() admin.Status { return admin.Status{} }

func (f *fakeNode) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeNode) ReleaseGroup(_ context.Context, name string) error {
	f.record("release " + name)
	return nil
}

func (f *fakeNode) ReclaimGroup(_ context.Context, name string) error {
	f.record("reclaim " + name)
	return nil
}

func (f *fakeNode) SetAdminState(_ context.Context, service, address, state string) (admin.Backend, error) {
	f.record(fmt.Sprintf("state %s %s %s", service, address, state))
	if address == "10.0.0.9:80" {
		return admin.Backend{}, fmt.Errorf("service %s has no backend %s: %w", service, address, admin.ErrNotFound)
	}
	return admin.Backend{Address: address, AdminState: state, Weight: 1, Healthy: true, Active: 3}, nil
}

func (f *fakeNode) SetWeight(_ context.Context, service, address string, w int) (admin.Backend, error) {
	f.record(fmt.Sprintf("weight %s %s %d", service, address, w))
	return admin.Backend{Address: address, AdminState: "ready", Weight: w, Healthy: true}, nil
}

func (f *fakeNode) AddBackend(_ context.Context, service string, b admin.NewBackend) (admin.Backend, error) {
	w := 1
	if b.Weight != nil {
		w = *b.Weight
	}
	f.record(fmt.Sprintf("add %s %s %d %v", service, b.Address, w, b.Backup))
	return admin.Backend{Address: b.Address, AdminState: "ready", Weight: w}, nil
}

func (f *fakeNode) RemoveBackend(_ context.Context, service, address string) (admin.Backend, error) {
	f.record(fmt.Sprintf("remove %s %s", service, address))
	return admin.Backend{Address: address, Active: 2}, nil
}

func (f *fakeNode) ReloadConfig(context.Context) (string, error) {
	f.record("reload")
	if f.reject != nil {
		return "", &admin.RejectedError{Errors: f.reject}
	}
	return "3f2a9c1e77b0d1c2aa", nil
}

// startFakeNode serves a fakeNode's admin API with a token; it returns
// the address and a config file that points at it.
func startFakeNode(t *testing.T, f *fakeNode) (addr, cfgFile string) {
	t.Helper()
	dir := t.TempDir()
	const token = "0123456789abcdef-cli"
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := admin.New(admin.Options{Source: f, Control: f, Token: func() string { return token },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	cfgFile = filepath.Join(dir, "fulcrum.yaml")
	cfg := fmt.Sprintf("node: { name: lb1 }\nadmin: { listen: %s, token_file: %s }\nservices:\n  - name: web\n    listen: 127.0.0.1:1\n    backends: [ { address: 127.0.0.1:2 } ]\n",
		ln.Addr(), tokenFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), cfgFile
}

func TestBackendCommands(t *testing.T) {
	t.Parallel()
	f := &fakeNode{}
	addr, cfgFile := startFakeNode(t, f)
	tests := []struct {
		args     []string
		code     int
		call     string
		out, err string
	}{
		{[]string{"backend", "drain", "web", "10.0.0.1:80", "-c", cfgFile}, 0, "state web 10.0.0.1:80 drain",
			"web 10.0.0.1:80: drain, weight 1, healthy, 3 active connections\n", ""},
		{[]string{"backend", "disable", "web", "10.0.0.1:80", "-c", cfgFile}, 0, "state web 10.0.0.1:80 maint",
			"web 10.0.0.1:80: maint, weight 1, healthy, 3 active connections\n", ""},
		{[]string{"backend", "enable", "web", "[2001:db8::1]:80", "-c", cfgFile}, 0, "state web [2001:db8::1]:80 ready",
			"web [2001:db8::1]:80: ready, weight 1, healthy, 3 active connections\n", ""},
		{[]string{"backend", "drain", "web", "10.0.0.9:80", "-c", cfgFile}, 1, "state web 10.0.0.9:80 drain",
			"", "no backend 10.0.0.9:80"},
		{[]string{"backend", "weight", "web", "10.0.0.1:80", "5", "-c", cfgFile}, 0, "weight web 10.0.0.1:80 5",
			"web 10.0.0.1:80: ready, weight 5, healthy, 0 active connections\n", ""},
		{[]string{"backend", "weight", "web", "10.0.0.1:80", "heavy", "-c", cfgFile}, 1, "", "", `weight "heavy": want an integer 0-65535`},
		{[]string{"backend", "add", "web", "10.0.0.3:80", "--weight", "0", "--backup", "-c", cfgFile}, 0, "add web 10.0.0.3:80 0 true",
			"web 10.0.0.3:80: ready, weight 0, down, 0 active connections\n", ""},
		{[]string{"backend", "add", "web", "10.0.0.4:80", "-c", cfgFile}, 0, "add web 10.0.0.4:80 1 false", "", ""},
		{[]string{"backend", "remove", "web", "10.0.0.1:80", "-c", cfgFile}, 0, "remove web 10.0.0.1:80",
			"web 10.0.0.1:80: removed (2 active connections)\n", ""},
		{[]string{"reload", "-c", cfgFile}, 0, "reload", "reloaded: config 3f2a9c1e77b0\n", ""},
		{[]string{"ha", "release", "web", "-c", cfgFile}, 0, "release web", "released web: a peer takes over its VIPs\n", ""},
		{[]string{"ha", "reclaim", "web", "-c", cfgFile}, 0, "reclaim web",
			"reclaimed web: the release is undone; this node preempts again as configured\n", ""},
		// Without the token (the address given, no config): refused.
		{[]string{"backend", "drain", "web", "10.0.0.1:80", "--admin", addr}, 1, "", "", "a valid bearer token is required"},
		{[]string{"backend", "drain", "web"}, 1, "", "", "accepts 2 arg(s)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:3], " "), func(t *testing.T) {
			f.mu.Lock()
			f.calls = nil
			f.mu.Unlock()
			var stdout, stderr bytes.Buffer
			code := Main(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit status: got %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if tt.out != "" && stdout.String() != tt.out {
				t.Errorf("stdout: got %q, want %q", stdout.String(), tt.out)
			}
			if !strings.Contains(stderr.String(), tt.err) {
				t.Errorf("stderr: got %q, want %q in it", stderr.String(), tt.err)
			}
			f.mu.Lock()
			calls := f.calls
			f.mu.Unlock()
			if want := []string{tt.call}; tt.call != "" && (len(calls) != 1 || calls[0] != tt.call) {
				t.Errorf("calls: got %q, want %q", calls, want)
			} else if tt.call == "" && len(calls) > 0 {
				t.Errorf("calls: got %q, want none", calls)
			}
		})
	}
}

func TestReloadRejected(t *testing.T) {
	t.Parallel()
	f := &fakeNode{reject: []string{
		"fulcrum.yaml:7:16: services[0].backends[0].address: want ip:port",
		"fulcrum.yaml:9:5: services[0].scheduler: unknown scheduler \"wrt\", did you mean \"wrr\"?",
	}}
	_, cfgFile := startFakeNode(t, f)
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"reload", "-c", cfgFile}, &stdout, &stderr); code != 1 {
		t.Errorf("exit status: got %d, want 1", code)
	}
	golden(t, "reload-rejected.golden", stderr.Bytes())
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q, want nothing", stdout.String())
	}
}
