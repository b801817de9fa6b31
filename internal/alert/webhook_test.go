package alert

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWebhook(t *testing.T) {
	t.Parallel()
	type request struct {
		method, path, contentType string
		body                      []byte
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	d, _ := newDispatcher(t, Hook{Name: "hook", Webhook: srv.URL + "/alerts"})
	start(t, d)
	ev := Event{Kind: "backend", Service: "web", Backend: "10.0.0.5:80", State: "down", PrevState: "up",
		Reason: "connect: connection refused", Node: "lb1", Time: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Extra: map[string]string{"weight": "10"}}
	d.Notify(ev)
	req := <-got
	if req.method != http.MethodPost || req.path != "/alerts" || req.contentType != "application/json" {
		t.Errorf("got %s %s with Content-Type %q, want POST /alerts with application/json", req.method, req.path, req.contentType)
	}
	var fields map[string]any
	if err := json.Unmarshal(req.body, &fields); err != nil {
		t.Fatalf("body %q: %v", req.body, err)
	}
	want := map[string]any{
		"kind": "backend", "service": "web", "backend": "10.0.0.5:80", "state": "down", "prev_state": "up",
		"reason": "connect: connection refused", "node": "lb1", "time": "2024-05-06T07:08:09Z",
		"extra": map[string]any{"weight": "10"},
	}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("JSON body (-want +got):\n%s", diff)
	}
	s := settled(t, d, "hook", 1)
	if s.Sent != 1 || s.LastSent.IsZero() || s.LastError != "" {
		t.Errorf("got sent %d, last sent %v, last error %q; want 1, a time, none", s.Sent, s.LastSent, s.LastError)
	}
}

func TestWebhookFailure(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/secret-token/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database on fire", http.StatusInternalServerError)
	})
	mux.HandleFunc("/secret-token/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/secret-token/slow", func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(mux)
	closed.Close()

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		want    string
	}{
		{name: "500", url: srv.URL + "/secret-token/fail", want: "webhook " + srv.URL + ": 500 Internal Server Error: database on fire"},
		{name: "redirect", url: srv.URL + "/secret-token/moved", want: "webhook " + srv.URL + ": 302 Found"},
		{name: "timeout", url: srv.URL + "/secret-token/slow", timeout: 200 * time.Millisecond, want: "webhook " + srv.URL + ": no answer within the 200ms timeout"},
		{name: "refused", url: closed.URL + "/secret-token/fail", want: "webhook " + closed.URL + ": dial tcp " + strings.TrimPrefix(closed.URL, "http://") + ": connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, logs := newDispatcher(t, Hook{Name: "h", Webhook: tt.url, Timeout: tt.timeout})
			start(t, d)
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
			s := settled(t, d, "h", 1)
			if s.Sent != 0 || s.Failed != 1 || s.LastError != tt.want {
				t.Errorf("got sent %d, failed %d, last error %q; want 0, 1, %q", s.Sent, s.Failed, s.LastError, tt.want)
			}
			if strings.Contains(logs.String(), "secret-token") {
				t.Errorf("the log has the webhook's path, want only scheme and host:\n%s", logs)
			}
		})
	}
}

func TestExecAndWebhook(t *testing.T) {
	t.Parallel()
	_, ok := newRecorder(t)
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(fail.Close)
	tests := []struct {
		name string
		hook Hook
		want string
	}{
		{name: "both work", hook: Hook{Exec: []string{"true"}, Webhook: ok}},
		{name: "webhook fails", hook: Hook{Exec: []string{"true"}, Webhook: fail.URL},
			want: "webhook " + fail.URL + ": 503 Service Unavailable"},
		{name: "both fail", hook: Hook{Exec: []string{"false"}, Webhook: fail.URL},
			want: "exec false: exit status 1; webhook " + fail.URL + ": 503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.hook
			h.Name = "h"
			d, _ := newDispatcher(t, h)
			start(t, d)
			d.Notify(backendEvent("web", "10.0.0.5:80", "down"))
			s := settled(t, d, "h", 1)
			var wantSent, wantFailed uint64 = 1, 0
			if tt.want != "" {
				wantSent, wantFailed = 0, 1
			}
			if s.Sent != wantSent || s.Failed != wantFailed || s.LastError != tt.want {
				t.Errorf("got sent %d, failed %d, last error %q; want %d, %d, %q", s.Sent, s.Failed, s.LastError, wantSent, wantFailed, tt.want)
			}
		})
	}
}
