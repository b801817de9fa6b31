package health

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"
)

func init() {
	register(Type{
		Name: "udp",
		Keys: []string{"send", "expect"},
		Validate: func(s *Spec) []FieldError {
			if len(s.Send) == 0 {
				return []FieldError{{"send", "required for a udp check: the datagram to send"}}
			}
			return nil
		},
		New: func(s Spec) (Checker, error) {
			return &udpChecker{timeout: s.Timeout, send: s.Send, expect: s.Expect}, nil
		},
	})
}

// udpChecker sends one datagram on a connected socket and waits for a
// reply. Connecting the socket is what lets the kernel hand back an ICMP
// port unreachable as ECONNREFUSED, a clear "down" without waiting for
// the timeout.
type udpChecker struct {
	timeout      time.Duration
	send, expect []byte
}

var _ Checker = (*udpChecker)(nil)

// maxDatagram is the largest UDP payload; a shorter buffer would truncate
// the reply before Expect is searched.
const maxDatagram = 65535

func (c *udpChecker) Check(ctx context.Context, t Target) error {
	if !t.Addr.IsValid() {
		return errNoAddr
	}
	addr := t.Addr.String()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return failure(ctx, "udp "+addr, c.timeout, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A deadline in the past is the one way to wake a blocked read on
	// cancellation.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write(c.send); err != nil {
		return c.fail(ctx, addr, err)
	}
	buf := make([]byte, maxDatagram)
	n, err := conn.Read(buf)
	if err != nil {
		return c.fail(ctx, addr, err)
	}
	if len(c.expect) > 0 && !bytes.Contains(buf[:n], c.expect) {
		return &checkError{reason: "reply from " + addr + " lacks " + strconv.Quote(string(c.expect))}
	}
	return nil
}

func (c *udpChecker) fail(ctx context.Context, addr string, err error) error {
	if ctx.Err() == nil && isRefused(err) {
		return &checkError{reason: "reply from " + addr + ": port unreachable (connection refused)", err: err}
	}
	return failure(ctx, "reply from "+addr, c.timeout, err)
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
