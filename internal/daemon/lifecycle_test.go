package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// TestLifecycleHooks: the hooks systemd notifications hang on fire in
// order — Ready once serving, Reloading/Reloaded around every reload with
// the config then running, Stopping before the drain — and Alive answers
// while the Run loop turns.
func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	backend := echoBackend(t, "b1")
	listen := freeTCP(t)
	good := fmt.Sprintf("admin: { listen: off }\nshutdown: { drain_timeout: 1s }\nservices:\n  - { name: web, listen: %s, backends: [ { address: %s } ] }\n", listen, backend)
	var (
		mu     sync.Mutex
		yaml   = good
		events []string
	)
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	d := New(Options{
		Load: func() (*config.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			return config.Parse("test.yaml", []byte(yaml))
		},
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:     func() { record("ready") },
		Reloading: func() { record("reloading") },
		Reloaded: func(running *config.Config, _ string, err error) {
			record(fmt.Sprintf("reloaded %d services err=%v", len(running.Services), err != nil))
		},
		Stopping: func() { record("stopping") },
	})

	// Before Run, nothing answers.
	ctx0, cancel0 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := d.Alive(ctx0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Alive before Run: got %v, want a deadline error", err)
	}
	cancel0()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		err := d.Alive(actx)
		acancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Alive never answered")
		}
	}
	if got := ask(t, listen); got != "b1" {
		t.Fatalf("got %q, want b1", got)
	}

	reload := func(next string) error {
		mu.Lock()
		yaml = next
		mu.Unlock()
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		return d.Reload(rctx)
	}
	second := freeTCP(t)
	if err := reload(good + fmt.Sprintf("  - { name: web2, listen: %s, backends: [ { address: %s } ] }\n", second, backend)); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	if err := reload("services: []\n"); err == nil {
		t.Fatal("bad reload: got nil error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{
		"ready",
		"reloading", "reloaded 2 services err=false",
		"reloading", "reloaded 2 services err=true", // the previous config still runs
		"stopping",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("hooks: got\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}
