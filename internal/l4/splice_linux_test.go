package l4

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTCPRelaySplices checks that the relay between two TCP connections
// goes through splice(2) even with the idle watch on. Splice moves bytes
// through a pipe; when the client stops reading, the relay stalls with
// bytes sitting in that pipe, which user-space copying would never do.
//
// Not parallel: parallel tests are paused meanwhile, so no other relay
// can be the one holding the pipe.
func TestTCPRelaySplices(t *testing.T) {
	before := fullPipes(t)
	be := startBackend(t, "tcp4", func(c net.Conn) {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	s := spec()
	s.IdleTimeout = time.Minute
	svc, _ := newService(t, s, nil, be.addr)
	_, addr := startTCP(t, "tcp4", svc)
	c := dial(t, addr)
	if _, err := io.ReadFull(c, make([]byte, 1<<10)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stalled with bytes in a splice pipe", func() bool {
		for fd := range fullPipes(t) {
			if !before[fd] {
				return true
			}
		}
		return false
	})
}

// fullPipes returns the process's pipe descriptors that hold unread bytes.
func fullPipes(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	full := map[int]bool{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(l, "pipe:") {
			continue
		}
		// TIOCINQ is FIONREAD: the bytes waiting in the pipe.
		if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err == nil && n > 0 {
			full[fd] = true
		}
	}
	return full
}
