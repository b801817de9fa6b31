package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

func init() {
	register(Type{
		Name:     "ping",
		Validate: func(*Spec) []FieldError { return nil },
		New: func(s Spec) (Checker, error) {
			return &pingChecker{timeout: s.Timeout}, nil
		},
	})
}

// pingChecker sends one ICMP echo request to the target's address (the
// port is not used) and waits for the matching reply: ldirectord's
// checktype=ping, and heartbeat's ipfail for HA tracking. It needs a raw
// socket (root or CAP_NET_RAW).
type pingChecker struct {
	timeout time.Duration
}

var _ Checker = (*pingChecker)(nil)

// pingSeq numbers the echo requests of this process, so that concurrent
// pings to one address each find their own reply.
var pingSeq atomic.Uint32

func (c *pingChecker) Check(ctx context.Context, t Target) error {
	a := t.Addr.Addr().Unmap()
	if !a.IsValid() {
		return &checkError{reason: "no address to ping"}
	}
	if err := ping(ctx, a, c.timeout); err != nil {
		return &checkError{reason: fmt.Sprintf("ping %s: %v", a, err), err: err}
	}
	return nil
}

// ping sends one ICMP echo request on a raw socket and waits for the
// matching reply until timeout or ctx ends.
func ping(ctx context.Context, a netip.Addr, timeout time.Duration) error {
	network, typ := "ip4:icmp", byte(8)
	if a.Is6() {
		network, typ = "ip6:ipv6-icmp", 128
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	msg := echoRequest(typ, uint16(os.Getpid()), uint16(pingSeq.Add(1)), !a.Is6())
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: a.AsSlice()}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if src.Unmap() == a && isEchoReply(buf[:n], msg) {
			return nil
		}
	}
}

// echoRequest builds an ICMP (typ 8) or ICMPv6 (typ 128) echo request
// with a fixed payload; the kernel computes ICMPv6 checksums itself.
func echoRequest(typ byte, id, seq uint16, checksum bool) []byte {
	msg := make([]byte, 16)
	msg[0] = typ
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "fulcrum!")
	if checksum {
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	}
	return msg
}

// isEchoReply reports whether b, an ICMP message read from a raw socket,
// is the reply to the echo request req: the reply type of its family, its
// sequence number and its payload.
func isEchoReply(b, req []byte) bool {
	replyType := byte(0)
	if req[0] == 128 {
		replyType = 129
	}
	return len(b) >= 8 && b[0] == replyType &&
		binary.BigEndian.Uint16(b[6:]) == binary.BigEndian.Uint16(req[6:]) &&
		bytes.Equal(b[8:min(len(b), len(req))], req[8:min(len(b), len(req))])
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
