package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

func init() {
	register(Type{
		Name:     "tcp",
		Keys:     []string{"send", "expect"},
		Validate: func(*Spec) []FieldError { return nil },
		New: func(s Spec) (Checker, error) {
			return &tcpChecker{timeout: s.Timeout, send: s.Send, expect: s.Expect}, nil
		},
	})
}

// tcpChecker connects, optionally writes send and waits for expect in the
// reply, and closes: keepalived's TCP_CHECK, ldirectord's
// checktype=connect, Piranha nanny's send/expect and HAProxy's tcp-check
// send/expect string.
type tcpChecker struct {
	timeout      time.Duration
	send, expect []byte
}

var _ Checker = (*tcpChecker)(nil)

// maxReply bounds what is read of a tcp check's reply while looking for
// Expect: a banner or a status line, not a stream.
const maxReply = 64 << 10

func (c *tcpChecker) Check(ctx context.Context, t Target) error {
	if !t.Addr.IsValid() {
		return errNoAddr
	}
	addr := t.Addr.String()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return failure(ctx, "connect "+addr, c.timeout, err)
	}
	defer conn.Close()
	if len(c.send) == 0 && len(c.expect) == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A deadline in the past is the one way to wake a blocked read on
	// cancellation.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if len(c.send) > 0 {
		if _, err := conn.Write(c.send); err != nil {
			return failure(ctx, "send to "+addr, c.timeout, err)
		}
	}
	if len(c.expect) == 0 {
		return nil
	}
	return c.awaitExpect(ctx, conn, addr)
}

// awaitExpect reads until the reply holds expect, the peer closes, the
// reply reaches maxReply or the deadline passes.
func (c *tcpChecker) awaitExpect(ctx context.Context, conn net.Conn, addr string) error {
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):min(cap(buf), maxReply)])
		// Search only where a new match can be: it ends in the new bytes.
		from := max(0, len(buf)-len(c.expect)+1)
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf[from:], c.expect) {
			return nil
		}
		switch {
		case err == nil && len(buf) < maxReply:
			continue
		case err == nil, errors.Is(err, io.EOF):
			return &checkError{reason: "reply from " + addr + " lacks " + strconv.Quote(string(c.expect)) + replyTail(buf)}
		}
		return failure(ctx, "reply from "+addr, c.timeout, err)
	}
}

// replyTail quotes the start of a reply that lacked what was expected, so
// the reason shows what came instead.
func replyTail(reply []byte) string {
	if len(reply) == 0 {
		return " (connection closed without a reply)"
	}
	const show = 64
	if len(reply) > show {
		return " (got " + strconv.Quote(string(reply[:show])) + "…)"
	}
	return " (got " + strconv.Quote(string(reply)) + ")"
}

var errNoAddr = errors.New("no check address")
