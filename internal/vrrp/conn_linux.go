package vrrp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConn is a Conn over a raw IP socket for protocol 112, bound to one
// interface. It needs CAP_NET_RAW.
type rawConn struct {
	f       *os.File
	rc      syscall.RawConn
	family  Family
	ifindex int
	src     netip.Addr
	dsts    []netip.Addr // the group, or the unicast peers
	unicast bool
	auth    *Authenticator // nil: plain VRRP

	recv      chan Packet
	done      chan struct{}
	closeOnce sync.Once
}

var (
	_ Conn         = (*rawConn)(nil)
	_ ConfigHasher = (*rawConn)(nil)
)

// SetConfigHash carries h in authenticated adverts; plain VRRP adverts
// stay standard and carry nothing.
func (c *rawConn) SetConfigHash(h []byte) {
	if c.auth != nil {
		c.auth.SetConfigHash(h)
	}
}

// The largest advert: 255 IPv6 addresses and a trailer, plus an IPv4
// header with options; a packet that fills the buffer was truncated.
const readBufLen = headerLen + 255*16 + AuthTrailerHashLen + 60 + 1

// Listen opens a raw VRRP socket on opts.Interface: it joins the VRRP
// multicast group there (unless opts.Peers selects unicast), sends with a
// TTL or hop limit of 255 and does not loop its own multicast back.
//
// The socket, and the interface it is bound to, belong to the network
// namespace of the calling thread: a caller that switches namespaces locks
// its OS thread around Listen, and may use the Conn from anywhere after.
func Listen(opts ConnOptions) (Conn, error) {
	var af int
	var group netip.Addr
	switch opts.Family {
	case IPv4:
		af, group = unix.AF_INET, GroupIPv4
	case IPv6:
		af, group = unix.AF_INET6, GroupIPv6
	default:
		return nil, fmt.Errorf("vrrp: listen on %s: unknown family %v", opts.Interface, opts.Family)
	}
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen: interface %q: %w", opts.Interface, err)
	}
	c := &rawConn{
		family:  opts.Family,
		ifindex: ifi.Index,
		src:     opts.Source.WithZone(""),
		dsts:    []netip.Addr{group},
		unicast: len(opts.Peers) > 0,
		recv:    make(chan Packet, 16),
		done:    make(chan struct{}),
	}
	if !c.src.IsValid() {
		if c.src, err = PrimaryAddr(opts.Interface, opts.Family); err != nil {
			return nil, err
		}
	}
	if c.src.Is4() != (opts.Family == IPv4) || c.src.Is4In6() {
		return nil, fmt.Errorf("vrrp: listen: source %v is not %v", c.src, opts.Family)
	}
	if c.unicast {
		c.dsts = nil
		for _, p := range opts.Peers {
			if p.Is4() != (opts.Family == IPv4) || p.Is4In6() {
				return nil, fmt.Errorf("vrrp: listen: peer %v is not %v", p, opts.Family)
			}
			c.dsts = append(c.dsts, p.WithZone(""))
		}
	}
	if opts.AuthKey != nil {
		if c.auth, err = NewAuthenticator(opts.AuthKey); err != nil {
			return nil, err
		}
	}

	fd, err := unix.Socket(af, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, Protocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp: listen: socket: %w", err)
	}
	if err := c.setup(fd, opts.Interface); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vrrp: listen on %s: %w", opts.Interface, err)
	}
	c.f = os.NewFile(uintptr(fd), "vrrp:"+opts.Interface)
	if c.rc, err = c.f.SyscallConn(); err != nil {
		c.f.Close()
		return nil, fmt.Errorf("vrrp: listen: %w", err)
	}
	go c.readLoop()
	return c, nil
}

func (c *rawConn) setup(fd int, ifname string) error {
	type opt struct {
		name        string
		level, code int
		val         int
	}
	// Without SO_BINDTODEVICE a raw socket hears VRRP from every
	// interface, and the same VRID on two links would cross-talk.
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); err != nil {
		return fmt.Errorf("SO_BINDTODEVICE: %w", err)
	}
	var opts []opt
	if c.family == IPv4 {
		opts = []opt{
			{"IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255},
			{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, 255},
			{"IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0},
		}
		mreq := &unix.IPMreqn{Ifindex: int32(c.ifindex)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF: %w", err)
		}
		if !c.unicast {
			mreq.Multiaddr = GroupIPv4.As4()
			if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
				return fmt.Errorf("join %v: %w", GroupIPv4, err)
			}
		}
	} else {
		opts = []opt{
			{"IPV6_MULTICAST_IF", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, c.ifindex},
			{"IPV6_MULTICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255},
			{"IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255},
			{"IPV6_MULTICAST_LOOP", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0},
			// An IPv6 raw socket gets no header: the hop limit and the
			// destination (for the checksum) come as control messages.
			{"IPV6_RECVHOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1},
			{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1},
		}
		if !c.unicast {
			mreq := &unix.IPv6Mreq{Multiaddr: GroupIPv6.As16(), Interface: uint32(c.ifindex)}
			if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
				return fmt.Errorf("join %v: %w", GroupIPv6, err)
			}
		}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.code, o.val); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	return nil
}

func (c *rawConn) Receive() <-chan Packet { return c.recv }

// Close stops reception; Receive's channel closes soon after.
func (c *rawConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.f.Close()
	})
	return err
}

// Send sends a to the group or to each peer, sealing it per destination
// when authenticating. Every destination is tried; the error joins the
// failures.
func (c *rawConn) Send(a Advert) error {
	var errs []error
	buf := make([]byte, 0, readBufLen)
	oob := c.pktinfo()
	for _, d := range c.dsts {
		var b []byte
		var err error
		if c.auth != nil {
			b, err = c.auth.Seal(buf[:0], a, c.src, d)
		} else {
			b, err = a.Marshal(buf[:0], c.src, d)
		}
		if err != nil {
			return err
		}
		var to unix.Sockaddr
		if c.family == IPv4 {
			to = &unix.SockaddrInet4{Addr: d.As4()}
		} else {
			to = &unix.SockaddrInet6{Addr: d.As16(), ZoneId: uint32(c.ifindex)}
		}
		var serr error
		werr := c.rc.Write(func(fd uintptr) bool {
			serr = unix.Sendmsg(int(fd), b, oob, to, 0)
			return serr != unix.EAGAIN
		})
		if err := errors.Join(werr, serr); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: send to %v: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// pktinfo is the control message that fixes the source address and the
// interface of a sent advert: the checksum (and MAC) cover the source, so
// the kernel must not pick another.
func (c *rawConn) pktinfo() []byte {
	if c.family == IPv4 {
		info := unix.Inet4Pktinfo{Ifindex: int32(c.ifindex), Spec_dst: c.src.As4()}
		return cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, unsafe.Pointer(&info), unsafe.Sizeof(info))
	}
	info := unix.Inet6Pktinfo{Addr: c.src.As16(), Ifindex: uint32(c.ifindex)}
	return cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Pointer(&info), unsafe.Sizeof(info))
}

func cmsg(level, typ int, data unsafe.Pointer, size uintptr) []byte {
	b := make([]byte, unix.CmsgSpace(int(size)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(int(size)))
	copy(b[unix.CmsgLen(0):], unsafe.Slice((*byte)(data), size))
	return b
}

// readLoop delivers packets until the socket is closed or fails. A read
// error other than Close's ends it: the error goes out as a last Packet
// so that the Instance can say why its Conn went away.
func (c *rawConn) readLoop() {
	defer close(c.recv)
	buf := make([]byte, readBufLen)
	oob := make([]byte, 256)
	for {
		var n, oobn, flags int
		var from unix.Sockaddr
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		var p Packet
		switch {
		case err != nil: // closed
			return
		case rerr == unix.EINTR:
			continue
		case rerr != nil:
			p = Packet{Err: fmt.Errorf("vrrp: receive: %w", rerr)}
		case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n == len(buf):
			p = Packet{Err: fmt.Errorf("vrrp: receive: truncated packet: %w", ErrLength)}
		case c.family == IPv4:
			p = c.decode4(buf[:n])
		default:
			p = c.decode6(buf[:n], oob[:oobn], from)
		}
		select {
		case c.recv <- p:
		case <-c.done:
			return
		}
		if rerr != nil {
			return
		}
	}
}

func (c *rawConn) decode4(b []byte) Packet {
	ip, err := parseIPv4(b)
	if err != nil {
		return Packet{Err: err}
	}
	return c.decode(ip.payload, ip.src, ip.dst, ip.ttl)
}

func (c *rawConn) decode6(b, oob []byte, from unix.Sockaddr) Packet {
	sa, ok := from.(*unix.SockaddrInet6)
	if !ok {
		return Packet{Err: fmt.Errorf("vrrp: receive: source %T: %w", from, ErrFamily)}
	}
	src := netip.AddrFrom16(sa.Addr)
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return Packet{Src: src, Err: fmt.Errorf("vrrp: receive: control messages: %w", err)}
	}
	var dst netip.Addr
	hops := -1
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IPV6 {
			continue
		}
		switch {
		case m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			hops = int(int32(binary.NativeEndian.Uint32(m.Data)))
		case m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= int(unsafe.Sizeof(unix.Inet6Pktinfo{})):
			dst = netip.AddrFrom16([16]byte(m.Data[:16]))
		}
	}
	if hops < 0 || !dst.IsValid() {
		return Packet{Src: src, Err: errors.New("vrrp: receive: no hop limit or destination from the kernel")}
	}
	return c.decode(b, src, dst, hops)
}

func (c *rawConn) decode(b []byte, src, dst netip.Addr, ttl int) Packet {
	p := Packet{Src: src, TTL: ttl}
	if c.unicast && !slices.Contains(c.dsts, src) {
		p.Err = fmt.Errorf("vrrp: packet from %v: %w", src, ErrNotPeer)
		return p
	}
	if c.auth != nil {
		var h []byte
		p.Advert, h, p.Err = c.auth.OpenHash(b, src, dst)
		if h != nil {
			p.ConfigHash = hex.EncodeToString(h)
		}
	} else {
		p.Advert, p.Err = ParseAdvert(b, src, dst)
	}
	return p
}
