package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// ReadHeader reads one PROXY header, v1 or v2, from r.
//
// It never reads past the end of a valid header: v2 is read as its fixed
// part and then exactly the length it declares; v1 is read in chunks no
// longer than the shortest valid remainder of the line, so the CRLF is
// always the last byte read. That leaves r positioned at the first byte of
// the proxied stream without any buffering, and the caller may go on using
// r directly. It is meant for the start of a connection, with a read
// deadline set by the caller: a peer that sends less than a header makes
// it wait.
//
// Malformed input gives an error wrapping ErrInvalid (and io.EOF or
// io.ErrUnexpectedEOF when the stream ends early); other read errors are
// returned wrapped as they are.
func ReadHeader(r io.Reader) (Header, error) {
	// One buffer large enough for either version: v1's whole line, or v2's
	// fixed part followed by the largest address block.
	buf := make([]byte, v2FixedLen+v2MaxAddrLn)
	if err := readFull(r, buf[:v1MinLen]); err != nil {
		return Header{}, err
	}
	switch {
	case bytes.HasPrefix(buf, v2Sig):
		return readV2(r, buf)
	case bytes.HasPrefix(buf, v1Prefix):
		return readV1(r, buf)
	}
	return Header{}, invalid("no v1 or v2 signature")
}

func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("proxyproto: %w: stream ends inside the header: %w", ErrInvalid, err)
	}
	return fmt.Errorf("proxyproto: read header: %w", err)
}

// readV1 completes a v1 line whose first v1MinLen bytes are in buf.
func readV1(r io.Reader, buf []byte) (Header, error) {
	n, checked := v1MinLen, 0
	for {
		for i := checked; i < n; i++ {
			switch buf[i] {
			case '\r':
				if i == n-1 {
					continue // the LF comes with the next read
				}
				if i == n-2 && buf[n-1] == '\n' {
					return parseV1(buf[:n-2])
				}
				return Header{}, invalid("v1: CR not followed by LF")
			case '\n':
				return Header{}, invalid("v1: LF without CR")
			}
		}
		need, err := v1Need(buf[:n])
		if err != nil {
			return Header{}, err
		}
		if n+need > v1MaxLen {
			return Header{}, invalid("v1: no CRLF within %d bytes", v1MaxLen)
		}
		if err := readFull(r, buf[n:n+need]); err != nil {
			return Header{}, err
		}
		// Rescan the last byte: a CR there is judged with its successor.
		checked, n = n-1, n+need
	}
}

// v1Need returns how many more bytes the v1 line that starts with line
// has at least, so reading that many can never go past its CRLF.
func v1Need(line []byte) (int, error) {
	if line[len(line)-1] == '\r' {
		return 1, nil
	}
	rest := line[len(v1Prefix):]
	switch {
	case bytes.HasPrefix(rest, []byte("UNKNOWN")):
		// Anything may follow "UNKNOWN " up to the CRLF.
		if c := rest[len("UNKNOWN")]; c != ' ' && c != '\r' {
			return 0, invalid("v1: unknown protocol")
		}
		return 2, nil
	case bytes.HasPrefix(rest, []byte("TCP4 ")), bytes.HasPrefix(rest, []byte("TCP6 ")):
		// "PROXY TCPx SRC DST SPORT DPORT": five spaces, and each token after
		// a space has at least one byte.
		const spaces = 5
		seen := bytes.Count(line, []byte{' '})
		if seen > spaces {
			return 0, invalid("v1: too many fields")
		}
		need := 2*(spaces-seen) + len("\r\n")
		if line[len(line)-1] == ' ' {
			need++
		}
		return need, nil
	}
	return 0, invalid("v1: unknown protocol")
}

// parseV1 parses a complete v1 line without its CRLF.
func parseV1(line []byte) (Header, error) {
	s := string(line[len(v1Prefix):])
	proto, rest, _ := strings.Cut(s, " ")
	var want4 bool
	switch proto {
	case "UNKNOWN":
		return Header{Version: 1, Command: CommandProxy}, nil
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, invalid("v1: unknown protocol %q", proto)
	}
	f := strings.Split(rest, " ")
	if len(f) != 4 {
		return Header{}, invalid("v1: %d address fields, want 4", len(f))
	}
	src, err := parseV1Addr(f[0], want4)
	if err != nil {
		return Header{}, err
	}
	dst, err := parseV1Addr(f[1], want4)
	if err != nil {
		return Header{}, err
	}
	sport, err := parseV1Port(f[2])
	if err != nil {
		return Header{}, err
	}
	dport, err := parseV1Port(f[3])
	if err != nil {
		return Header{}, err
	}
	return Header{
		Version:   1,
		Command:   CommandProxy,
		Transport: TransportTCP,
		Source:    netip.AddrPortFrom(src, sport),
		Dest:      netip.AddrPortFrom(dst, dport),
	}, nil
}

func parseV1Addr(s string, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, invalid("v1: address %q", s)
	case want4 && !a.Is4():
		return netip.Addr{}, invalid("v1: TCP4 with non-IPv4 address %q", s)
	case !want4 && !a.Is6():
		return netip.Addr{}, invalid("v1: TCP6 with non-IPv6 address %q", s)
	case a.Zone() != "":
		return netip.Addr{}, invalid("v1: address %q has a zone", s)
	}
	return a, nil
}

// parseV1Port accepts the canonical decimal form only: no sign, no
// leading zero, at most 65535.
func parseV1Port(s string) (uint16, error) {
	if len(s) == 0 || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return 0, invalid("v1: port %q", s)
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, invalid("v1: port %q", s)
		}
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, invalid("v1: port %q", s)
	}
	return uint16(v), nil
}

// readV2 completes a v2 header whose first v1MinLen bytes are in buf.
func readV2(r io.Reader, buf []byte) (Header, error) {
	if err := readFull(r, buf[v1MinLen:v2FixedLen]); err != nil {
		return Header{}, err
	}
	verCmd, fam := buf[12], buf[13]
	length := int(binary.BigEndian.Uint16(buf[14:16]))
	if v := verCmd >> 4; v != 2 {
		return Header{}, invalid("v2: version %d", v)
	}
	cmd := Command(verCmd & 0x0f)
	if cmd != CommandLocal && cmd != CommandProxy {
		return Header{}, invalid("v2: command %#x", uint8(cmd))
	}
	// Only these seven values are defined; the specification requires a
	// receiver to reject any other.
	var addrLen int
	tr := TransportUnspec
	switch fam {
	case 0x00: // AF_UNSPEC
	case 0x11:
		addrLen, tr = v2Inet4Len, TransportTCP
	case 0x12:
		addrLen, tr = v2Inet4Len, TransportUDP
	case 0x21:
		addrLen, tr = v2Inet6Len, TransportTCP
	case 0x22:
		addrLen, tr = v2Inet6Len, TransportUDP
	case 0x31, 0x32: // AF_UNIX: paths, which mean nothing to an IP proxy
		addrLen = v2UnixLen
	default:
		return Header{}, invalid("v2: address family and transport %#02x", fam)
	}
	if cmd == CommandLocal {
		// The receiver must discard the whole block, family included.
		if err := discard(r, length); err != nil {
			return Header{}, err
		}
		return Header{Version: 2, Command: CommandLocal}, nil
	}
	if length < addrLen {
		return Header{}, invalid("v2: length %d too short for family %#02x, want at least %d", length, fam, addrLen)
	}
	h := Header{Version: 2, Command: CommandProxy}
	switch addrLen {
	case v2Inet4Len, v2Inet6Len:
		a := buf[v2FixedLen : v2FixedLen+addrLen]
		if err := readFull(r, a); err != nil {
			return Header{}, err
		}
		h.Transport = tr
		h.Source, h.Dest = v2Addrs(a)
	default:
		if err := discard(r, addrLen); err != nil {
			return Header{}, err
		}
	}
	// TLVs follow the addresses; nothing here needs them.
	if err := discard(r, length-addrLen); err != nil {
		return Header{}, err
	}
	return h, nil
}

// v2Addrs decodes an AF_INET (12 bytes) or AF_INET6 (36 bytes) block:
// source address, destination address, source port, destination port.
func v2Addrs(a []byte) (src, dst netip.AddrPort) {
	var s, d netip.Addr
	if len(a) == v2Inet4Len {
		s = netip.AddrFrom4([4]byte(a[0:4]))
		d = netip.AddrFrom4([4]byte(a[4:8]))
		a = a[8:]
	} else {
		s = netip.AddrFrom16([16]byte(a[0:16]))
		d = netip.AddrFrom16([16]byte(a[16:32]))
		a = a[32:]
	}
	return netip.AddrPortFrom(s, binary.BigEndian.Uint16(a[0:2])),
		netip.AddrPortFrom(d, binary.BigEndian.Uint16(a[2:4]))
}

func discard(r io.Reader, n int) error {
	if n == 0 {
		return nil
	}
	_, err := io.CopyN(io.Discard, r, int64(n))
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("proxyproto: %w: stream ends inside the header: %w", ErrInvalid, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("proxyproto: read header: %w", err)
}
