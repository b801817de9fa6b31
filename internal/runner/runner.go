// Package runner runs the programs operators hand to fulcrum: exec health
// checks, alert hooks, HA notify scripts and track scripts. Each of them
// once had its own copy of os/exec plumbing and each copy got a different
// part wrong (no process group, unbounded output, waiting forever on a
// pipe that a backgrounded grandchild keeps open), so there is one here.
//
// A program runs in a process group of its own, so that a timeout kills
// what a shell script started too; its stdout and stderr share one pipe
// that runner reads itself into a bounded buffer, so a flood of output
// costs no memory and never blocks the program; and once the program has
// exited, runner waits for that pipe at most a short grace period, so a
// child left holding it cannot hold the caller.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// DefaultOutputLimit is how much output is kept when Command.OutputLimit
// is zero.
const DefaultOutputLimit = 64 << 10

// pipeGrace is how long Run keeps reading output after the program has
// exited, for what it wrote last; only a process that outlived it can make
// the wait this long.
const pipeGrace = 200 * time.Millisecond

// ErrTimeout is returned (wrapped) when Command.Timeout ran out.
var ErrTimeout = errors.New("timed out")

// Command is one run of a program.
type Command struct {
	// Argv is the program and its arguments; no shell is involved.
	Argv []string
	// Env is the program's whole environment as KEY=VALUE. PATH is added
	// from the daemon's own when Env sets none, so that a script finds its
	// tools; nothing else of the daemon's environment leaks into it.
	Env []string
	// Stdin is what the program reads; nil gives it an empty input.
	Stdin []byte
	// Timeout bounds the run; zero leaves only ctx.
	Timeout time.Duration
	// OutputLimit is how many bytes of stdout and stderr (together, in
	// order) are kept; the rest is read and discarded. Zero means
	// DefaultOutputLimit.
	OutputLimit int
	// KillLeftovers kills whatever the program left running in its
	// process group when it exits. Checks want it: a leftover per interval
	// would pile up. Notify scripts that start a daemon in the background
	// do not.
	KillLeftovers bool
}

// Result is what a run produced.
type Result struct {
	// ExitCode is the program's exit status; -1 when a signal ended it
	// (including runner's own kill at a timeout) or it never started.
	ExitCode int
	// Output is the first OutputLimit bytes of stdout and stderr.
	Output []byte
	// Truncated reports that output was cut at OutputLimit.
	Truncated bool
	// Status says how the program ended, as os/exec does: "exit status
	// 3", "signal: killed"; empty when it never started.
	Status string
	// Duration is from start to exit.
	Duration time.Duration
}

// Err is nil for an exit status of 0, else an error naming the status and
// the last line of the output, which is where scripts usually say why.
func (r Result) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	msg := r.Status
	if line := LastLine(r.Output); line != "" {
		msg += ": " + line
	}
	return errors.New(msg)
}

// Run runs c and waits for it. The error is non-nil only when the program
// could not start, ran past c.Timeout (errors.Is(err, ErrTimeout)) or ctx
// ended first (errors.Is(err, ctx.Err())); in the last two cases the whole
// process group has been killed. A program that ran and exited with a
// non-zero status is a nil error and Result.ExitCode; see Result.Err.
//
// Run is safe for concurrent use.
func Run(ctx context.Context, c Command) (Result, error) {
	res := Result{ExitCode: -1}
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return res, errors.New("runner: no program to run")
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s: not started: %w", c.Argv[0], err)
	}
	var timeout <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	limit := c.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}

	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env = environ(c.Env)
	setProcessGroup(cmd)
	// Pipes of our own rather than os/exec's copying goroutines: with
	// *os.File ends Wait returns when the process exits, and the reading
	// is ours to stop when a grandchild keeps the pipe open.
	outR, outW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("%s: %w", c.Argv[0], err)
	}
	defer outR.Close()
	cmd.Stdout, cmd.Stderr = outW, outW
	var inR, inW *os.File
	if c.Stdin != nil {
		if inR, inW, err = os.Pipe(); err != nil {
			outW.Close()
			return res, fmt.Errorf("%s: %w", c.Argv[0], err)
		}
		defer inW.Close()
		cmd.Stdin = inR
	}

	start := time.Now()
	err = cmd.Start()
	outW.Close() // only the program's processes hold the write end now
	if inR != nil {
		inR.Close()
	}
	if err != nil {
		return res, err // os/exec's error names the program
	}
	if inW != nil {
		go func() {
			// A program that does not read its input gets EPIPE here, or
			// a deadline once the run is over; either ends the goroutine.
			inW.Write(c.Stdin)
			inW.Close()
		}()
	}

	out := &capped{max: limit}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(out, outR)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var runErr error
	select {
	case <-exited:
	case <-timeout:
		killGroup(cmd)
		<-exited
		runErr = fmt.Errorf("%s: %w after %v", c.Argv[0], ErrTimeout, c.Timeout)
	case <-ctx.Done():
		killGroup(cmd)
		<-exited
		runErr = fmt.Errorf("%s: %w", c.Argv[0], ctx.Err())
	}
	res.Duration = time.Since(start)
	res.ExitCode = cmd.ProcessState.ExitCode()
	res.Status = cmd.ProcessState.String()
	if runErr != nil || c.KillLeftovers {
		killGroup(cmd)
	}
	if inW != nil {
		inW.SetWriteDeadline(time.Now())
	}
	grace := time.NewTimer(pipeGrace)
	defer grace.Stop()
	select {
	case <-drained:
	case <-grace.C:
		// Only a process that left the group, or one we were asked to
		// leave running, still holds the pipe.
		outR.SetReadDeadline(time.Now())
		<-drained
	}
	res.Output, res.Truncated = out.buf, out.cut
	return res, runErr
}

// environ is env with the daemon's PATH added when env has none.
func environ(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	out := make([]string, 0, len(env)+1)
	out = append(out, env...)
	if p, ok := os.LookupEnv("PATH"); ok {
		out = append(out, "PATH="+p)
	}
	if out == nil {
		out = []string{} // nil would mean "inherit everything" to os/exec
	}
	return out
}

// capped keeps the first max bytes written to it and accepts the rest
// without keeping it, so a program flooding its output is drained instead
// of blocked. One goroutine writes to it.
type capped struct {
	buf []byte
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - len(c.buf); n > room {
		c.cut = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return n, nil
}

// maxLine bounds a line quoted from a program's output in an error, which
// ends up in logs and alerts.
const maxLine = 256

// FirstLine is the first non-blank line of out, at most 256 bytes.
func FirstLine(out []byte) string {
	for len(out) > 0 {
		var line []byte
		line, out, _ = bytes.Cut(out, []byte("\n"))
		if s := strings.TrimSpace(string(line)); s != "" {
			return shorten(s)
		}
	}
	return ""
}

// LastLine is the last non-blank line of out, at most 256 bytes.
func LastLine(out []byte) string {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	return shorten(s)
}

func shorten(s string) string {
	if len(s) > maxLine {
		return strings.ToValidUTF8(s[:maxLine], "") + "…"
	}
	return s
}
