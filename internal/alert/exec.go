package alert

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/runner"
)

// runExec runs h's program for one event and returns its output (stdout
// and stderr together, at most outputLimit bytes).
func runExec(ctx context.Context, h *Hook, dv delivery) ([]byte, error) {
	res, err := runner.Run(ctx, runner.Command{
		Argv:        h.Exec,
		Env:         execEnv(&dv.ev),
		Stdin:       dv.body,
		Timeout:     h.Timeout,
		OutputLimit: outputLimit,
	})
	out := res.Output
	if res.Truncated {
		out = append(out[:len(out):len(out)], "\n[output cut at 4 KiB]"...)
	}
	switch {
	case errors.Is(err, runner.ErrTimeout):
		err = fmt.Errorf("killed after the %v timeout", h.Timeout)
	case ctx.Err() != nil:
		err = errors.New("cancelled at shutdown")
	case err == nil:
		err = res.Err()
	}
	if err != nil {
		return out, fmt.Errorf("exec %s: %w", h.Exec[0], err)
	}
	return out, nil
}

// envNames are the variables set for every event; Extra keys may not
// replace them.
var envNames = []string{"EVENT", "SERVICE", "BACKEND", "BACKEND_HOST", "BACKEND_PORT",
	"STATE", "PREV_STATE", "REASON", "NODE", "TIME"}

// execEnv is the environment of a hook program: PATH and the event. Every
// FULCRUM_ variable is set, empty if need be, so scripts under set -u
// work for every kind of event.
func execEnv(ev *Event) []string {
	host, port, err := net.SplitHostPort(ev.Backend)
	if err != nil {
		host, port = ev.Backend, ""
	}
	values := []string{ev.Kind, ev.Service, ev.Backend, host, port,
		ev.State, ev.PrevState, ev.Reason, ev.Node, ev.Time.Format(time.RFC3339)}
	env := make([]string, 0, 1+len(values)+len(ev.Extra))
	if path, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+path)
	}
	taken := make(map[string]bool, len(envNames)+len(ev.Extra))
	for i, name := range envNames {
		env = append(env, "FULCRUM_"+name+"="+envValue(values[i]))
		taken[name] = true
	}
	// Sorted, so that of two keys with one name the same one always wins.
	for _, k := range slices.Sorted(maps.Keys(ev.Extra)) {
		name := envName(k)
		if name == "" || taken[name] {
			continue
		}
		taken[name] = true
		env = append(env, "FULCRUM_"+name+"="+envValue(ev.Extra[k]))
	}
	return env
}

// envName upper-cases key and turns what a shell cannot name into _.
func envName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, key)
}

// envValue drops NUL bytes, which os/exec refuses in an environment; a
// reason can quote a backend's answer.
func envValue(v string) string {
	return strings.ReplaceAll(v, "\x00", "")
}
