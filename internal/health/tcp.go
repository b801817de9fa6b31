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
	sc := replyScan{expect: c.expect}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		found, full := sc.add(buf[:n])
		switch {
		case found:
			return nil
		case err == nil && !full:
			continue
		case err == nil, errors.Is(err, io.EOF):
			return &checkError{reason: "reply from " + addr + " lacks " + strconv.Quote(string(c.expect)) + replyTail(sc.reply)}
		}
		return failure(ctx, "reply from "+addr, c.timeout, err)
	}
}

// replyScan looks for expect in a reply that arrives in pieces, within its
// first maxReply bytes.
type replyScan struct {
	expect []byte
	reply  []byte // what arrived, at most maxReply bytes
}

// add takes the next piece of the reply and reports whether expect has
// occurred, and whether the reply reached maxReply (nothing more is read).
func (s *replyScan) add(p []byte) (found, full bool) {
	p = p[:min(len(p), maxReply-len(s.reply))]
	// A new match ends in the new bytes: search from len(expect)-1 back.
	from := max(0, len(s.reply)-len(s.expect)+1)
	s.reply = append(s.reply, p...)
	return bytes.Contains(s.reply[from:], s.expect), len(s.reply) >= maxReply
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
