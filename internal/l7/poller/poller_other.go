//go:build !linux

package poller

import (
	"errors"
	"log/slog"
	"syscall"
	"time"
)

// ErrClosed is returned by Register after Close.
var ErrClosed = errors.New("poller: closed")

// errUnsupported: the poller needs epoll.
var errUnsupported = errors.New("poller: needs epoll (Linux)")

// Poller exists on Linux only; elsewhere Start fails and sockets are read
// through Go's netpoller.
type Poller struct{}

// Start fails: there is no epoll.
func Start(*slog.Logger) (*Poller, error) { return nil, errUnsupported }

func (*Poller) Close() error                              { return nil }
func (*Poller) Err() error                                { return errUnsupported }
func (*Poller) Register(syscall.RawConn) (*Waiter, error) { return nil, errUnsupported }

// Stats are a poller's counters.
type Stats struct {
	Sockets int
	Wakeups uint64
}

func (*Poller) Stats() Stats { return Stats{} }

// Waiter is never handed out without epoll.
type Waiter struct{}

func (*Waiter) Wait() bool             { return false }
func (*Waiter) Notify()                {}
func (*Waiter) SetDeadline(time.Time)  {}
func (*Waiter) Detach(syscall.RawConn) {}
func (*Waiter) Release()               {}
func (*Waiter) Reset()                 {}
func (*Waiter) Quiet() bool            { return false }
