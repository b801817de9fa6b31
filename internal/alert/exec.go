package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// runExec runs h's program for one event and returns its output (stdout
// and stderr together, at most outputLimit bytes).
func runExec(ctx context.Context, h *Hook, dv delivery) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Exec[0], h.Exec[1:]...)
	cmd.Env = execEnv(&dv.ev)
	cmd.Stdin = bytes.NewReader(dv.body)
	out := &capped{max: outputLimit}
	// One writer for both: os/exec then uses a single pipe, and output
	// keeps its order.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The program succeeded; something it started in the background
		// still holds its output.
		err = nil
	}
	if err == nil {
		return out.bytes(), nil
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("killed after the %v timeout", h.Timeout)
	case ctx.Err() != nil:
		err = errors.New("cancelled at shutdown")
	default:
		if line := lastLine(out.buf); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
	}
	return out.bytes(), fmt.Errorf("exec %s: %w", h.Exec[0], err)
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

// capped keeps the first max bytes written to it and discards the rest
// while still accepting it, so a program that floods its output neither
// grows memory nor blocks on a full pipe. os/exec calls Write from one
// goroutine at a time when stdout and stderr are the same writer.
type capped struct {
	buf []byte
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if len(p) > room {
		c.cut = true
		c.buf = append(c.buf, p[:room]...)
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

// bytes returns the output kept, marked when some was cut.
func (c *capped) bytes() []byte {
	if !c.cut {
		return c.buf
	}
	return append(c.buf[:len(c.buf):len(c.buf)], "\n[output cut at 4 KiB]"...)
}

// lastLine is the last non-empty line of out, at most 200 bytes: what a
// failing script usually says about why.
func lastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return s
}
