package health

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

// check runs one check the way the monitor does: bounded by the spec's
// timeout.
func check(t *testing.T, s Spec, target Target) error {
	t.Helper()
	c, err := NewChecker(s)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), s.Timeout)
	defer cancel()
	return c.Check(ctx, target)
}

// reason is err's text, "" for nil.
func reason(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatalf("parse %v: %v", a, err)
	}
	return ap
}

// closedPort is a loopback port that nothing listens on (see package
// freeport: nobody else can take it meanwhile).
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	a := freeport.TCP(t)
	if network != "tcp" {
		a = freeport.UDP(t)
	}
	return netip.MustParseAddrPort(a)
}

// fullListener is a loopback port whose accept queue is full, so that a
// connect hangs: the kernel drops the SYN, as a backend does when it
// stops accepting.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatalf("filling the accept queue: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the accept queue never filled")
	return addr
}

func TestTCPCheck(t *testing.T) {
	t.Parallel()
	up := serveTCP(t, func(net.Conn) {}) // accepts and closes
	refused := closedPort(t, "tcp")
	hanging := fullListener(t)

	tests := []struct {
		name string
		addr netip.AddrPort
		want string
	}{
		{"up", up, ""},
		{"refused", refused, "connect " + refused.String() + ": connection refused"},
		{"hanging", hanging, "connect " + hanging.String() + ": timeout after 300ms"},
		{"no address", netip.AddrPort{}, "no check address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{Type: "tcp", Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 1, Fall: 1}
			start := time.Now()
			err := check(t, s, Target{Addr: tt.addr})
			if got := reason(err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("check took %v, want it bounded by the 300ms timeout", d)
			}
		})
	}
}

func TestCheckCancelled(t *testing.T) {
	t.Parallel()
	hanging := fullListener(t)
	c, err := NewChecker(Spec{Type: "tcp", Interval: time.Second, Timeout: time.Minute, Rise: 1, Fall: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	err = c.Check(ctx, Target{Addr: hanging})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error wrapping context.Canceled", err)
	}
}

// serveTCP runs handle on every connection to a new loopback listener.
func serveTCP(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return addrPort(t, ln.Addr())
}

func TestTCPSendExpect(t *testing.T) {
	t.Parallel()
	// redis answers +PONG only to the exact PING, so a checker that sent
	// nothing or something else sees -ERR.
	redis := serveTCP(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len("PING\r\n"))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING\r\n" {
			c.Write([]byte("-ERR unknown command\r\n"))
			return
		}
		// One byte a write: the match must be found across reads.
		for _, b := range []byte("+PONG\r\n") {
			c.Write([]byte{b})
		}
		io.Copy(io.Discard, c)
	})
	smtp := serveTCP(t, func(c net.Conn) { c.Write([]byte("220 mx.example.com ESMTP\r\n")) })
	silent := serveTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	chatty := serveTCP(t, func(c net.Conn) {
		c.Write(bytes.Repeat([]byte("x"), maxReply))
		c.Write([]byte("+PONG\r\n"))
	})
	closes := serveTCP(t, func(net.Conn) {}) // accepts and closes

	tests := []struct {
		name         string
		addr         netip.AddrPort
		send, expect string
		want         string
	}{
		{"send and expect", redis, "PING\r\n", "+PONG", ""},
		{"wrong request", redis, "PONG\r\n", "+PONG", `reply from ` + redis.String() + ` lacks "+PONG" (got "-ERR unknown command\r\n")`},
		{"expect without send reads the banner", smtp, "", "220 ", ""},
		{"banner lacks", smtp, "", "554", `reply from ` + smtp.String() + ` lacks "554" (got "220 mx.example.com ESMTP\r\n")`},
		{"send without expect", silent, "PING\r\n", "", ""},
		{"no reply", silent, "PING\r\n", "+PONG", "reply from " + silent.String() + ": timeout after 300ms"},
		{"closed at once", closes, "", "+PONG", `reply from ` + closes.String() + ` lacks "+PONG" (connection closed without a reply)`},
		{"expect beyond the read limit", chatty, "", "+PONG", `reply from ` + chatty.String() + ` lacks "+PONG" (got "` + strings.Repeat("x", 64) + `"…)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{Type: "tcp", Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 1, Fall: 1,
				Send: []byte(tt.send), Expect: []byte(tt.expect)}
			if tt.want == "" {
				s.Timeout = 10 * time.Second // success must not depend on the machine's speed
			}
			if got := reason(check(t, s, Target{Addr: tt.addr})); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzReplyScan checks the piecewise search of a tcp check's reply
// against bytes.Contains over the reply's first maxReply bytes, however
// the reply is cut into reads.
func FuzzReplyScan(f *testing.F) {
	f.Add([]byte("+PONG\r\n"), []byte("+PONG"), []byte{1, 1, 1, 1})
	f.Add([]byte("220 mx.example.com ESMTP\r\n"), []byte("220 "), []byte{2})
	f.Add([]byte("-ERR unknown command\r\n"), []byte("+PONG"), []byte{3, 200})
	f.Add(bytes.Repeat([]byte("x"), 100), []byte("xy"), []byte{99, 1})
	f.Add([]byte("aaab"), []byte("aab"), []byte{2, 2})
	f.Fuzz(func(t *testing.T, reply, expect, cuts []byte) {
		if len(expect) == 0 {
			return // the checker reads nothing then
		}
		// Stretch short inputs past the limit sometimes, so that the
		// bound is exercised too.
		if len(cuts) > 0 && cuts[0] == 0xff {
			reply = append(bytes.Repeat([]byte{'x'}, maxReply-len(expect)/2), reply...)
		}
		s := replyScan{expect: expect}
		rest := reply
		found, full := false, false
		for i := 0; len(rest) > 0 && !found && !full; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
			}
			found, full = s.add(rest[:n])
			rest = rest[n:]
		}
		seen := reply[:min(len(reply), maxReply)]
		if want := bytes.Contains(seen, expect); found != want {
			t.Fatalf("reply %q, expect %q, cuts %v: got found %v, want %v", reply, expect, cuts, found, want)
		}
		if len(s.reply) > maxReply {
			t.Fatalf("kept %d bytes, want at most %d", len(s.reply), maxReply)
		}
	})
}
