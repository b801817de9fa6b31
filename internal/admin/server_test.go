package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

type fakeSource struct{ st Status }

func (f fakeSource) Status() Status { return f.st }

func TestStatusRoundTrip(t *testing.T) {
	t.Parallel()
	want := Status{
		Node: "lb1", Version: "v1", ConfigHash: "abc", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Services: []Service{{
			Name: "web", Protocol: "tcp", Listen: "127.0.0.1:80", Scheduler: "wlc",
			Persistence: &Persistence{TimeoutSeconds: 360, Entries: 2},
			Counters:    Counters{Accepted: 10, Active: 1, IdleTimeouts: 3},
			Backends:    []Backend{{Address: "127.0.0.1:81", Role: RolePrimary, Weight: 1, Healthy: true, Available: true, Total: 10}},
		}},
	}
	addr := serveTest(t, fakeSource{want})

	got, err := FetchStatus(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	// Only GET is served on the status endpoint.
	resp, err := http.Post("http://"+addr+"/api/v1/status", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status: got %d, want 405", resp.StatusCode)
	}
}

func TestFetchStatusNoServer(t *testing.T) {
	t.Parallel()
	addr := freeport.TCP(t) // reserved: nothing listens there
	if _, err := FetchStatus(context.Background(), addr); err == nil {
		t.Fatal("got nil error from a closed port")
	}
}

// fakeControl records calls and answers from its fields.
type fakeControl struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeControl) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

func (f *fakeControl) ReleaseGroup(_ context.Context, name string) error {
	return f.record("release %s", name)
}

func (f *fakeControl) ReclaimGroup(_ context.Context, name string) error {
	return f.record("reclaim %s", name)
}

func (f *fakeControl) SetAdminState(_ context.Context, service, address, state string) (Backend, error) {
	return Backend{Address: address, AdminState: state}, f.record("state %s %s %s", service, address, state)
}

func (f *fakeControl) SetWeight(_ context.Context, service, address string, w int) (Backend, error) {
	return Backend{Address: address, Weight: w}, f.record("weight %s %s %d", service, address, w)
}

func (f *fakeControl) AddBackend(_ context.Context, service string, b NewBackend) (Backend, error) {
	w := -1
	if b.Weight != nil {
		w = *b.Weight
	}
	return Backend{Address: b.Address}, f.record("add %s %s %d %v", service, b.Address, w, b.Backup)
}

func (f *fakeControl) RemoveBackend(_ context.Context, service, address string) (Backend, error) {
	return Backend{Address: address}, f.record("remove %s %s", service, address)
}

func (f *fakeControl) ReloadConfig(context.Context) (string, error) {
	if err := f.record("reload"); err != nil {
		return "", err
	}
	return "abc123", nil
}

func serveControl(t *testing.T, ctl Controller, token string) string {
	t.Helper()
	return serveWith(t, Options{Source: fakeSource{}, Control: ctl, Token: func() string { return token }})
}

func TestControlEndpoints(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef"
	ctl := &fakeControl{}
	addr := serveControl(t, ctl, token)
	tests := []struct {
		name, method, path, body string
		auth                     string
		code                     int
		call                     string // "" when the controller must not be called
		resp                     string // substring of the answer
	}{
		{"drain", "POST", "/api/v1/services/web/backends/10.0.0.1:80/drain", "", token, 200, "state web 10.0.0.1:80 drain", `"admin_state": "drain"`},
		{"disable", "POST", "/api/v1/services/web/backends/10.0.0.1:80/disable", "", token, 200, "state web 10.0.0.1:80 maint", `"admin_state": "maint"`},
		{"drain in a route pool, escaped", "POST", "/api/v1/services/web%2Fapi/backends/10.0.0.1:80/drain", "", token, 200, "state web/api 10.0.0.1:80 drain", `"admin_state": "drain"`},
		{"enable IPv6, escaped", "POST", "/api/v1/services/web/backends/%5B2001:db8::1%5D:80/enable", "", token, 200, "state web [2001:db8::1]:80 ready", `"admin_state": "ready"`},
		{"no token", "POST", "/api/v1/services/web/backends/10.0.0.1:80/drain", "", "", 401, "", "bearer token"},
		{"wrong token", "POST", "/api/v1/services/web/backends/10.0.0.1:80/drain", "", "0123456789abcdeX", 401, "", "bearer token"},
		{"weight", "PUT", "/api/v1/services/web/backends/10.0.0.1:80/weight", `{"weight": 7}`, token, 200, "weight web 10.0.0.1:80 7", `"weight": 7`},
		{"weight missing", "PUT", "/api/v1/services/web/backends/10.0.0.1:80/weight", `{}`, token, 400, "", `want {\"weight\": N}`},
		{"weight not JSON", "PUT", "/api/v1/services/web/backends/10.0.0.1:80/weight", `7x`, token, 400, "", "body:"},
		{"weight unknown field", "PUT", "/api/v1/services/web/backends/10.0.0.1:80/weight", `{"weight": 1, "wieght": 2}`, token, 400, "", "unknown field"},
		{"weight by POST", "POST", "/api/v1/services/web/backends/10.0.0.1:80/weight", `{"weight": 1}`, token, 405, "", ""},
		{"add", "POST", "/api/v1/services/web/backends", `{"address":"10.0.0.3:80","weight":2,"backup":true}`, token, 200, "add web 10.0.0.3:80 2 true", `"address": "10.0.0.3:80"`},
		{"add default weight", "POST", "/api/v1/services/web/backends", `{"address":"10.0.0.4:80"}`, token, 200, "add web 10.0.0.4:80 -1 false", ""},
		{"add oversized body", "POST", "/api/v1/services/web/backends", `{"address":"` + strings.Repeat("1", 5000) + `"}`, token, 400, "", "body:"},
		{"remove", "DELETE", "/api/v1/services/web/backends/10.0.0.1:80", "", token, 200, "remove web 10.0.0.1:80", ""},
		{"reload", "POST", "/api/v1/reload", "", token, 200, "reload", `"config_hash": "abc123"`},
		{"release", "POST", "/api/v1/ha/web/release", "", token, 200, "release web", `"released": "web"`},
		{"reclaim", "POST", "/api/v1/ha/web/reclaim", "", token, 200, "reclaim web", `"reclaimed": "web"`},
		{"unknown action", "POST", "/api/v1/services/web/backends/10.0.0.1:80/explode", "", token, 404, "", ""},
	}
	for _, tt := range tests {
		ctl.mu.Lock()
		ctl.calls = nil
		ctl.mu.Unlock()
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, body)
		if tt.auth != "" {
			req.Header.Set("Authorization", "Bearer "+tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: got %d, want %d: %s", tt.name, resp.StatusCode, tt.code, got)
		}
		if !strings.Contains(string(got), tt.resp) {
			t.Errorf("%s: answer %s lacks %s", tt.name, got, tt.resp)
		}
		ctl.mu.Lock()
		calls := ctl.calls
		ctl.mu.Unlock()
		switch {
		case tt.call == "" && len(calls) > 0:
			t.Errorf("%s: controller called: %v", tt.name, calls)
		case tt.call != "" && (len(calls) != 1 || calls[0] != tt.call):
			t.Errorf("%s: calls %v, want [%s]", tt.name, calls, tt.call)
		}
	}
}

func TestControlErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		code int
		want string
	}{
		{"not found", fmt.Errorf("service web has no backend 10.0.0.9:80: %w", ErrNotFound), 404, `"error": "service web has no backend 10.0.0.9:80"`},
		{"invalid", fmt.Errorf("weight 70000: want 0-65535: %w", ErrInvalid), 400, `"error": "weight 70000: want 0-65535"`},
		{"rejected reload", &RejectedError{Errors: []string{"f.yaml:3:5: services[0].listen: bad", "f.yaml:4:5: services[0].scheduler: bad"}}, 422, `"f.yaml:4:5: services[0].scheduler: bad"`},
		{"other", errors.New("boom"), 500, `"error": "boom"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveControl(t, &fakeControl{err: tt.err}, "")
			// No token file: loopback clients may act.
			resp, err := http.Post("http://"+addr+"/api/v1/reload", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || !strings.Contains(string(got), tt.want) {
				t.Errorf("got %d %s, want %d with %s", resp.StatusCode, got, tt.code, tt.want)
			}
			// The client turns the answer back into an error.
			_, err = Reload(context.Background(), addr, "")
			var rej *RejectedError
			if tt.code == 422 && (!errors.As(err, &rej) || len(rej.Errors) != 2) {
				t.Errorf("client: got %v, want a RejectedError with 2 errors", err)
			}
			if tt.code != 422 && (err == nil || !strings.Contains(err.Error(), strings.Split(tt.err.Error(), ":")[0])) {
				t.Errorf("client: got %v, want the server's message", err)
			}
		})
	}
}
