package health

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/runner"
)

func init() {
	register(Type{
		Name: "exec",
		Keys: []string{"command"},
		Validate: func(s *Spec) []FieldError {
			if len(s.Command) == 0 || s.Command[0] == "" {
				return []FieldError{{"command", "required for an exec check: the program and its arguments"}}
			}
			return nil
		},
		New: func(s Spec) (Checker, error) {
			return &execChecker{timeout: s.Timeout, argv: s.Command}, nil
		},
		PerBackend: true, // FULCRUM_BACKEND and FULCRUM_SERVICE
	})
}

// maxOutput bounds what is kept of a command's output; only its first line
// reaches the reason, the rest is for a script that writes its error last
// within a short report.
const maxOutput = 4 << 10

// execChecker runs a command: mon's monitors, keepalived's MISC_CHECK.
// runner gives it a process group, so that the timeout kills whatever it
// started too, not only the shell at its top.
type execChecker struct {
	timeout time.Duration
	argv    []string
}

var _ Checker = (*execChecker)(nil)

func (c *execChecker) Check(ctx context.Context, t Target) error {
	res, err := runner.Run(ctx, runner.Command{
		Argv:        c.argv,
		Env:         execEnv(t),
		OutputLimit: maxOutput,
		// A leftover per interval would pile up.
		KillLeftovers: true,
	})
	line := runner.FirstLine(res.Output)
	switch {
	case ctx.Err() != nil:
		err := failure(ctx, "", c.timeout, ctx.Err())
		if line != "" {
			err.(*checkError).reason += ": " + line
		}
		return err
	case err != nil:
		return &checkError{reason: "start: " + err.Error(), err: err}
	case res.ExitCode == 0:
		return nil
	}
	reason := res.Status // "exit status 2", "signal: killed"
	if line != "" {
		reason += ": " + line
	}
	return &checkError{reason: reason, err: errors.New(reason)}
}

// execEnv is the whole environment of a check command: the target, and
// PATH so that a script finds its tools. Nothing else of the daemon's
// environment leaks into scripts.
func execEnv(t Target) []string {
	b := t.Backend
	if !b.IsValid() {
		b = t.Addr
	}
	env := []string{
		"FULCRUM_SERVICE=" + t.Service,
		"FULCRUM_BACKEND=" + addrString(b),
		"FULCRUM_BACKEND_HOST=" + hostString(b),
		"FULCRUM_BACKEND_PORT=" + portString(b),
		"FULCRUM_CHECK_ADDR=" + addrString(t.Addr),
	}
	if p, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+p)
	}
	return env
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func hostString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.Addr().String()
}

func portString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return strconv.Itoa(int(a.Port()))
}
