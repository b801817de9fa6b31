// Package freeport gives tests loopback addresses for servers that are
// started later (often by another process) or that must stay dead,
// without the race of "listen on port 0, close, use the port": between
// the close and the use, the kernel may hand the port to anyone — a
// parallel test's listener, or the local port of any outgoing connection
// on the machine — and the test then talks to a stranger.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TCP returns 127.0.0.1:port, reserved until t ends. A socket is bound
// there with SO_REUSEADDR and never listens: the kernel gives the port to
// no bind to port 0 and to no outgoing connection, while a listener with
// SO_REUSEADDR — every Go listener has it — can still bind it, in this
// process or another. Until one does, connecting is refused, so the
// address also serves as a dead backend.
func TCP(t testing.TB) string {
	t.Helper()
	syscall.ForkLock.RLock() // no child inherits the socket
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("freeport: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatalf("freeport: SO_REUSEADDR: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("freeport: bind 127.0.0.1:0: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("freeport: getsockname: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// UDP returns 127.0.0.1:port where nothing was bound a moment ago, chosen
// below the kernel's ephemeral range (ip_local_port_range): no socket
// bound to port 0 and no outgoing datagram's source can take it, and this
// process hands it out once. Unlike TCP the port cannot be held (a UDP
// bind conflicts with any socket on the port unless both set
// SO_REUSEADDR), so another process that picks the same port explicitly
// can still take it; nothing on it also makes it a dead address.
func UDP(t testing.TB) string {
	t.Helper()
	lo := ephemeralLow()
	if lo-minPort < 1000 {
		t.Fatalf("freeport: the ephemeral range starts at %d, leaving no room below it", lo)
	}
	for range 100 {
		port := minPort + rand.IntN(lo-minPort)
		if _, taken := given.LoadOrStore(port, true); taken {
			continue
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)).String()
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			continue // in use
		}
		pc.Close()
		return addr
	}
	t.Fatal("freeport: no free UDP port below the ephemeral range in 100 tries")
	return ""
}

// minPort is the lowest port UDP picks: above the well-known and the
// usual registered servers' ports.
const minPort = 10000

// given holds the UDP ports handed out by this process.
var given sync.Map

// ephemeralLow is the first port the kernel picks for port 0 (Linux's
// default when the sysctl cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
