//go:build !linux

package proxy

import (
	"syscall"
	"time"
)

// waiter is the poller's registration of a socket; without epoll there is
// no poller and sockets are read through Go's netpoller.
type waiter struct{}

func newWaiter(syscall.RawConn) *waiter { return nil }

func (*waiter) wait()                  {}
func (*waiter) notify()                {}
func (*waiter) setDeadline(time.Time)  {}
func (*waiter) detach(syscall.RawConn) {}
func (*waiter) release()               {}
func (*waiter) reset()                 {}
func (*waiter) quiet() bool            { return false }

// readRaw is never called without a waiter.
func (t *timedConn) readRaw(uintptr) bool { return true }
