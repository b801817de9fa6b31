package health

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// udpBackend answers each datagram with reply(datagram); a nil reply is
// silence.
func udpBackend(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	return addrPort(t, pc.LocalAddr())
}

func TestUDPCheck(t *testing.T) {
	t.Parallel()
	echo := udpBackend(t, func(b []byte) []byte { return b })
	wrong := udpBackend(t, func([]byte) []byte { return []byte("nope") })
	silent := udpBackend(t, func([]byte) []byte { return nil })
	refused := closedPort(t, "udp")

	tests := []struct {
		name   string
		addr   netip.AddrPort
		expect string
		want   string
	}{
		{"echo, any reply", echo, "", ""},
		{"echo, expected reply", echo, "ping", ""},
		{"wrong reply", wrong, "pong", "reply from " + wrong.String() + ` lacks "pong"`},
		{"no reply", silent, "", "reply from " + silent.String() + ": timeout after 300ms"},
		{"no listener", refused, "", "reply from " + refused.String() + ": port unreachable (connection refused)"},
		{"no address", netip.AddrPort{}, "", "no check address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{Type: "udp", Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 1, Fall: 1,
				Send: []byte("ping"), Expect: []byte(tt.expect)}
			if got := reason(check(t, s, Target{Addr: tt.addr})); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
