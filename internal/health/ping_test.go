package health

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

func pingSpec(timeout time.Duration) Spec {
	return Spec{Type: "ping", Interval: time.Second, Timeout: timeout, Rise: 1, Fall: 1}
}

// skipWithoutRawSockets skips when this process may not open ICMP raw
// sockets (not root, no CAP_NET_RAW).
func skipWithoutRawSockets(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ping needs a raw socket: run as root")
	}
}

func TestPingCheck(t *testing.T) {
	t.Parallel()
	skipWithoutRawSockets(t)
	for _, tt := range []struct {
		name string
		addr string
		ok   bool
	}{
		{"loopback answers", "127.0.0.1:80", true},
		{"loopback v6 answers", "[::1]:80", true},
		// TEST-NET-1 is never assigned: no answer within the timeout.
		{"unassigned address is silent", "192.0.2.77:80", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := check(t, pingSpec(300*time.Millisecond), Target{Addr: netip.MustParseAddrPort(tt.addr)})
			if (err == nil) != tt.ok {
				t.Fatalf("ping %s: got %v, want ok=%v", tt.addr, err, tt.ok)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("ping %s with a 300ms timeout took %v", tt.addr, d)
			}
		})
	}
}

// TestPingCheckCancelled: a check whose context ends (a reload, shutdown)
// returns at once with the context's error, not a "backend down".
func TestPingCheckCancelled(t *testing.T) {
	t.Parallel()
	skipWithoutRawSockets(t)
	c, err := NewChecker(pingSpec(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err = c.Check(ctx, Target{Addr: netip.MustParseAddrPort("192.0.2.77:80")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ping: got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelled ping returned after %v", d)
	}
}

func TestEchoReplyMatching(t *testing.T) {
	t.Parallel()
	req := echoRequest(8, 0x1234, 7, true)
	if icmpChecksum(req) != 0 {
		t.Errorf("request checksum does not verify: %#04x", icmpChecksum(req))
	}
	reply := append([]byte(nil), req...)
	reply[0] = 0
	other := append([]byte(nil), reply...)
	other[7] = 8 // another sequence number
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"reply", reply, true},
		{"our own request (loopback echoes it)", req, false},
		{"reply to another request", other, false},
		{"short", reply[:7], false},
		{"header only", reply[:8], true},
	} {
		if got := isEchoReply(tt.b, req); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	req6 := echoRequest(128, 1, 2, false)
	reply6 := append([]byte(nil), req6...)
	reply6[0] = 129
	if !isEchoReply(reply6, req6) || isEchoReply(reply, req6) {
		t.Error("ICMPv6 echo reply matching")
	}
}
