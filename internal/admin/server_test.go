package admin

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := FetchStatus(context.Background(), addr); err == nil {
		t.Fatal("got nil error from a closed port")
	}
}
