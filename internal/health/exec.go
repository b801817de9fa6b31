package health

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	})
}

// maxOutput bounds what is kept of a command's output; only its first line
// reaches the reason, the rest is for a script that writes its error last
// within a short report.
const maxOutput = 4 << 10

// maxReasonLine bounds the output line quoted in a reason, which ends up
// in logs and alerts.
const maxReasonLine = 256

// execChecker runs a command: mon's monitors, keepalived's MISC_CHECK.
// The command gets its own process group so that the timeout kills
// whatever it started too, not only the shell at its top.
type execChecker struct {
	timeout time.Duration
	argv    []string
}

var _ Checker = (*execChecker)(nil)

func (c *execChecker) Check(ctx context.Context, t Target) error {
	if err := ctx.Err(); err != nil {
		return failure(ctx, "", c.timeout, err)
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = execEnv(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// One pipe for stdout and stderr, read by us: with an *os.File, Wait
	// does not wait for a copying goroutine that a grandchild holding the
	// pipe open would stall.
	pr, pw, err := os.Pipe()
	if err != nil {
		return &checkError{reason: "exec: " + err.Error(), err: err}
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close() // from now on only the command's processes hold the write end
	if err != nil {
		return &checkError{reason: "start: " + err.Error(), err: err}
	}
	pid := cmd.Process.Pid

	out := boundedBuffer{max: maxOutput}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(&out, pr)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	killed := false
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		killGroup(pid)
		waitErr = <-exited
		killed = true
	}
	// Whatever the command left running in its group goes too: it would
	// keep the pipe open, and leak a process per interval.
	killGroup(pid)
	select {
	case <-drained:
	case <-ctx.Done():
		// Only a process that left the group can still hold the pipe.
		pr.SetReadDeadline(time.Now())
		<-drained
	}

	line := firstLine(out.buf)
	switch {
	case killed:
		err := failure(ctx, "", c.timeout, ctx.Err())
		if line != "" {
			err.(*checkError).reason += ": " + line
		}
		return err
	case waitErr == nil:
		return nil
	}
	reason := waitErr.Error() // "exit status 2", "signal: killed"
	if line != "" {
		reason += ": " + line
	}
	return &checkError{reason: reason, err: waitErr}
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

// killGroup kills the process group led by pid. ESRCH (the group is
// already gone) is the common case and not an error.
func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// boundedBuffer keeps the first max bytes written and discards the rest
// without ever failing, so that a command flooding its output is drained
// instead of blocking on a full pipe.
type boundedBuffer struct {
	buf []byte
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// firstLine is the first non-blank line of out, shortened for a reason.
func firstLine(out []byte) string {
	for len(out) > 0 {
		var line []byte
		line, out, _ = bytes.Cut(out, []byte("\n"))
		if s := strings.TrimSpace(string(line)); s != "" {
			if len(s) > maxReasonLine {
				s = strings.ToValidUTF8(s[:maxReasonLine], "") + "…"
			}
			return s
		}
	}
	return ""
}
