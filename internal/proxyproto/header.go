// Package proxyproto reads and writes the HAProxy PROXY protocol, versions
// 1 (text) and 2 (binary), which carries a client's original addresses
// across a proxy hop.
//
// ReadHeader consumes exactly the header and nothing after it, so the
// caller keeps using the raw connection afterwards (on Linux a
// *net.TCPConn then still relays with splice). The Append functions write
// a header into a caller's buffer without allocating.
//
// Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
package proxyproto

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalid is wrapped by every error about a malformed header, as
// opposed to an I/O error while reading one.
var ErrInvalid = errors.New("invalid PROXY header")

// Command says whether a header carries a proxied connection's addresses.
type Command uint8

const (
	// CommandLocal marks a connection the proxy made on its own behalf
	// (a health check): the receiver uses the connection's own addresses.
	CommandLocal Command = 0
	// CommandProxy marks a relayed connection. Every v1 header is one.
	CommandProxy Command = 1
)

func (c Command) String() string {
	switch c {
	case CommandLocal:
		return "LOCAL"
	case CommandProxy:
		return "PROXY"
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// Transport is the protocol of the proxied connection.
type Transport uint8

const (
	// TransportUnspec is used when the header carries no IP addresses: v1
	// UNKNOWN, v2 LOCAL, v2 AF_UNSPEC and v2 AF_UNIX.
	TransportUnspec Transport = iota
	TransportTCP
	TransportUDP
)

func (t Transport) String() string {
	switch t {
	case TransportUnspec:
		return "unspec"
	case TransportTCP:
		return "tcp"
	case TransportUDP:
		return "udp"
	}
	return fmt.Sprintf("Transport(%d)", uint8(t))
}

// Header is a decoded PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version   int
	Command   Command
	Transport Transport
	// Source is the original client and Dest the address it connected to.
	// Both are the zero AddrPort when the header carries no IP addresses
	// (see TransportUnspec); the receiver then keeps the connection's own
	// addresses, as the specification requires.
	Source netip.AddrPort
	Dest   netip.AddrPort
}

// HasAddrs reports whether h carries the original addresses.
func (h Header) HasAddrs() bool { return h.Source.IsValid() && h.Dest.IsValid() }

// Limits from the specification.
const (
	v1MaxLen    = 107 // "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n"
	v1MinLen    = 15  // "PROXY UNKNOWN\r\n"
	v2FixedLen  = 16
	v2Inet4Len  = 12
	v2Inet6Len  = 36
	v2UnixLen   = 216
	v2MaxAddrLn = v2UnixLen
)

var (
	v1Prefix = []byte("PROXY ")
	// v2Sig cannot be mistaken for v1 or for the start of any common
	// protocol; see section 2.2 of the specification.
	v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("proxyproto: %w: "+format, append([]any{ErrInvalid}, args...)...)
}
