package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"time"
)

// Checker probes one target once.
//
// Check may be called concurrently (the monitor never does so for one
// probe, but a checker holds no per-call state). It must return when ctx
// is done (its deadline is the spec's Timeout) and returns nil for up or
// an error whose text is the human reason for down, such as
// "connect 10.0.0.5:80: connection refused" or "status 503, want 200-399".
// When ctx was cancelled the error wraps context.Canceled, which the
// monitor never takes for a verdict.
type Checker interface {
	Check(ctx context.Context, t Target) error
}

// checkError is a failed check: reason is what users read, err keeps the
// cause for errors.Is.
type checkError struct {
	reason string
	err    error
}

func (e *checkError) Error() string { return e.reason }
func (e *checkError) Unwrap() error { return e.err }

// failure turns the error of one phase of a check ("connect 10.0.0.5:80")
// into its reason. A deadline reads "timeout after 2s" whatever layer
// noticed it, and cancellation keeps context.Canceled visible.
func failure(ctx context.Context, phase string, timeout time.Duration, err error) error {
	prefix := ""
	if phase != "" {
		prefix = phase + ": "
	}
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return &checkError{reason: prefix + "check cancelled", err: context.Canceled}
	case ctx.Err() != nil || isTimeout(err):
		return &checkError{reason: prefix + "timeout after " + timeout.String(), err: context.DeadlineExceeded}
	}
	return &checkError{reason: prefix + describe(err), err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// describe strips the layers of net and net/http wrapping that repeat what
// the phase already says ("dial tcp 10.0.0.5:80: connect: ...").
func describe(err error) string {
	for {
		switch e := err.(type) {
		case *url.Error:
			err = e.Err
			continue
		case *net.OpError:
			err = e.Err
			continue
		case *os.SyscallError:
			err = e.Err
			continue
		}
		break
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// net/http's name for a connection closed before the response
		// began; its error value is not exported.
		err.Error() == "http: server closed idle connection":
		return "connection closed"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	return err.Error()
}
