package realserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// The lab: a "director" namespace and a "real server" namespace joined by
// a veth, vd (10.78.0.1, fd00:78::1) to vr (10.78.0.2, fd00:78::2). The
// real server routes to the world (the clients) through the director, as
// a real server does through its gateway.
var (
	macD = net.HardwareAddr{0x02, 0, 0, 0x78, 0, 1}
	macR = net.HardwareAddr{0x02, 0, 0, 0x78, 0, 2}
	dir4 = netip.MustParseAddr("10.78.0.1")
	rs4  = netip.MustParseAddr("10.78.0.2")
	dir6 = netip.MustParseAddr("fd00:78::1")
	rs6  = netip.MustParseAddr("fd00:78::2")
)

type lab struct {
	dir, rs string // namespaces
	state   string // state file
}

func newLab(t *testing.T) *lab {
	t.Helper()
	netns.Require(t)
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	l := &lab{state: filepath.Join(t.TempDir(), "realserver.json")}
	base := fmt.Sprintf("fulcrum-rs-%08x-%d", h.Sum32(), os.Getpid())
	l.dir, l.rs = base+"-d", base+"-r"
	for _, ns := range []string{l.dir, l.rs} {
		netns.Add(t, ns)
		netns.IP(t, "-n", ns, "link", "set", "lo", "up")
	}
	netns.IP(t, "-n", l.dir, "link", "add", "vd", "address", macD.String(), "type", "veth",
		"peer", "name", "vr", "address", macR.String(), "netns", l.rs)
	for i, p := range [][2]string{{l.dir, "vd"}, {l.rs, "vr"}} {
		// Link-local addresses of our own, without DAD: neighbour
		// discovery for a reply from a VIP (on lo) needs one.
		netns.IP(t, "-n", p[0], "link", "set", p[1], "addrgenmode", "none")
		netns.IP(t, "-n", p[0], "addr", "add", fmt.Sprintf("fe80::%d/64", i+1), "dev", p[1], "nodad")
		netns.IP(t, "-n", p[0], "addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", p[1])
		netns.IP(t, "-n", p[0], "addr", "add", fmt.Sprintf("fd00:78::%d/64", i+1), "dev", p[1], "nodad")
		netns.IP(t, "-n", p[0], "link", "set", p[1], "up")
	}
	netns.IP(t, "-n", l.rs, "route", "add", "default", "via", dir4.String())
	netns.IP(t, "-n", l.rs, "-6", "route", "add", "default", "via", dir6.String())
	for _, p := range [][2]string{{l.dir, "vd"}, {l.rs, "vr"}} {
		netns.WaitUp(t, p[0], p[1])
	}
	return l
}

// in runs fn in namespace ns.
func in(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) up(t *testing.T, o Options) string {
	t.Helper()
	o.StatePath = l.state
	var out strings.Builder
	in(t, l.rs, func() error {
		_, err := Up(o, &out)
		return err
	})
	return out.String()
}

func (l *lab) down(t *testing.T) string {
	t.Helper()
	var out strings.Builder
	in(t, l.rs, func() error { return Down(l.state, &out) })
	return out.String()
}

func (l *lab) check(t *testing.T) *Report {
	t.Helper()
	var r *Report
	in(t, l.rs, func() (err error) { r, err = Check(l.state); return err })
	return r
}

func (l *lab) loadState(t *testing.T) *State {
	t.Helper()
	var st *State
	in(t, l.rs, func() (err error) {
		if st, err = LoadState(l.state); st == nil && err == nil {
			err = errors.New("no state file")
		}
		return err
	})
	return st
}

// snapshot is what up changes and down must restore in the real server.
func (l *lab) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(netns.IP(t, "-n", l.rs, "-d", "addr"))
	b.WriteString(netns.IP(t, "-n", l.rs, "-d", "link"))
	b.WriteString(netns.IP(t, "-n", l.rs, "-d", "route", "show", "table", "all"))
	b.WriteString(netns.IP(t, "-n", l.rs, "-d", "-6", "route", "show", "table", "all"))
	in(t, l.rs, func() error {
		for _, i := range []string{"all", "default", "lo", "vr"} {
			for _, k := range []string{arpIgnore, arpAnnounce, rpFilter} {
				v, err := readSysctl(confPath(i, k))
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, "%s=%s\n", sysctlName(confPath(i, k)), v)
			}
		}
		return nil
	})
	return b.String()
}

func (l *lab) sysctl(t *testing.T, iface, key string) string {
	t.Helper()
	var v string
	in(t, l.rs, func() (err error) { v, err = readSysctl(confPath(iface, key)); return err })
	return v
}

func (l *lab) setSysctl(t *testing.T, iface, key, v string) {
	t.Helper()
	in(t, l.rs, func() error { return writeSysctl(confPath(iface, key), v) })
}

// packetSocket opens an AF_PACKET socket on vd in the director namespace,
// receiving frames of protocol proto (0: none, send only).
func (l *lab) packetSocket(t *testing.T, proto uint16) (fd, ifindex int) {
	t.Helper()
	in(t, l.dir, func() error {
		ifc, err := net.InterfaceByName("vd")
		if err != nil {
			return err
		}
		ifindex = ifc.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return err
		}
		if proto != 0 {
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex})
		}
		return nil
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd, ifindex
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func send(t *testing.T, fd, ifindex int, frame []byte) {
	t.Helper()
	to := &unix.SockaddrLinklayer{Protocol: htons(binary.BigEndian.Uint16(frame[12:])), Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], frame[:6])
	if err := unix.Sendto(fd, frame, 0, to); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// arpRequest is a request from the director for target.
func arpRequest(target netip.Addr) []byte {
	f := append(append([]byte{}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), macD...)
	f = append(f, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1)
	f = append(f, macD...)
	d4, t4 := dir4.As4(), target.As4()
	f = append(f, d4[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	return append(f, t4[:]...)
}

// answered sends an ARP request for each target, then one for the real
// server's own address, and returns the targets answered before the
// latter's answer arrived: the kernel answers in order, so a VIP it
// would answer for is answered first.
func (l *lab) answered(t *testing.T, targets ...netip.Addr) []netip.Addr {
	t.Helper()
	fd, ifindex := l.packetSocket(t, unix.ETH_P_ARP)
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	for _, a := range append(targets, rs4) {
		send(t, fd, ifindex, arpRequest(a))
	}
	var got []netip.Addr
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			t.Fatalf("no ARP reply for %s in 10s", rs4)
		}
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		if n < 42 || binary.BigEndian.Uint16(f[20:]) != 2 {
			continue // a request (ours, seen going out)
		}
		sender := netip.AddrFrom4([4]byte(f[28:32]))
		if sender == rs4 {
			return got
		}
		got = append(got, sender)
	}
}

// synAckMSS reads frames on fd (an ETH_P_ALL packet socket) until a TCP
// SYN-ACK from vip to client arrives, and returns the MSS it offers.
func synAckMSS(t *testing.T, fd int, vip, client netip.AddrPort) int {
	t.Helper()
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			t.Fatalf("no SYN-ACK from %s to %s in 10s", vip, client)
		}
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		if n < 14 {
			continue
		}
		var src, dst netip.Addr
		var tcp []byte
		switch binary.BigEndian.Uint16(f[12:]) {
		case 0x0800:
			ip := f[14:]
			if len(ip) < 20 || ip[9] != 6 {
				continue
			}
			src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
			tcp = ip[int(ip[0]&15)*4:]
		case 0x86dd:
			ip := f[14:]
			if len(ip) < 40 || ip[6] != 6 {
				continue
			}
			src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
			tcp = ip[40:]
		default:
			continue
		}
		if len(tcp) < 20 || src != vip.Addr() || dst != client.Addr() ||
			binary.BigEndian.Uint16(tcp) != vip.Port() || binary.BigEndian.Uint16(tcp[2:]) != client.Port() || tcp[13]&0x12 != 0x12 {
			continue
		}
		opts := tcp[20:min(len(tcp), int(tcp[12]>>4)*4)]
		for i := 0; i < len(opts); {
			switch opts[i] {
			case 0:
				i = len(opts)
			case 1:
				i++
			default:
				if i+1 >= len(opts) || opts[i+1] < 2 {
					i = len(opts)
					continue
				}
				if opts[i] == 2 && opts[i+1] == 4 && i+4 <= len(opts) {
					return int(binary.BigEndian.Uint16(opts[i+2:]))
				}
				i += int(opts[i+1])
			}
		}
		t.Fatalf("SYN-ACK from %s without an MSS option", vip)
	}
}
