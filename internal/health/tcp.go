package health

import (
	"context"
	"errors"
	"net"
	"time"
)

// tcpChecker connects and closes: keepalived's TCP_CHECK, ldirectord's
// checktype=connect.
type tcpChecker struct {
	timeout time.Duration
}

var _ Checker = (*tcpChecker)(nil)

func (c *tcpChecker) Check(ctx context.Context, t Target) error {
	if !t.Addr.IsValid() {
		return errNoAddr
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.Addr.String())
	if err != nil {
		return failure(ctx, "connect "+t.Addr.String(), c.timeout, err)
	}
	return conn.Close()
}

var errNoAddr = errors.New("no check address")
