package freeport

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// TestTCPReserved: while reserved, the port is refused to bind(0) and to
// outgoing connections, refuses connections itself, and a listener can
// take it — twice, as a restarted server would.
func TestTCPReserved(t *testing.T) {
	t.Parallel()
	addr := TCP(t)
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)

	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s before anyone listens: connected, want refused", addr)
	}
	// The kernel picks bind(0)'s ports at random among ~14000 (the odd
	// ones of the ephemeral range): a port freed rather than reserved
	// comes back within this many picks more often than not.
	const tries = 20000
	for range tries {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if got == port {
			t.Fatalf("bind to port 0 returned the reserved port %d", port)
		}
	}
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for range tries / 10 {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got := c.LocalAddr().(*net.TCPAddr).Port
		c.Close()
		if got == port {
			t.Fatalf("an outgoing connection got the reserved port %d", port)
		}
	}

	for i := range 2 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen %d on the reserved %s: %v", i, addr, err)
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s while listening: %v", addr, err)
		}
		c.Close()
		if _, err := net.Listen("tcp", addr); err == nil {
			t.Fatalf("a second listener bound %s while the first listens", addr)
		}
		ln.Close()
	}
}

// TestUDPOutsideEphemeral: the port is below the kernel's range, free,
// and not handed out twice.
func TestUDPOutsideEphemeral(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	lo := ephemeralLow()
	for range 200 {
		addr := UDP(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, ps, _ := net.SplitHostPort(addr)
		if port, _ := strconv.Atoi(ps); port < minPort || port >= lo {
			t.Fatalf("port %d outside [%d, %d)", port, minPort, lo)
		}
	}
	for addr := range seen {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatalf("bind %s: %v", addr, err)
		}
		pc.Close()
		break
	}
}
