//go:build linux

package l4

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernelProgress returns a progress function over the TCP_INFO counters of
// two TCP sockets: bytes received from the peer and bytes the peer
// acknowledged, in both sockets. Reading them is one getsockopt per socket
// and leaves splice alone. It returns false when a or b is not a
// *net.TCPConn or the kernel lacks the counters.
func kernelProgress(a, b net.Conn) (progressFunc, bool) {
	ta, ok := a.(*net.TCPConn)
	if !ok || !tcpInfoHasBytes() {
		return nil, false
	}
	tb, ok := b.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	ra, err := ta.SyscallConn()
	if err != nil {
		return nil, false
	}
	rb, err := tb.SyscallConn()
	if err != nil {
		return nil, false
	}
	return func() (uint64, bool) {
		x, ok := tcpInfoBytes(ra)
		if !ok {
			return 0, false
		}
		y, ok := tcpInfoBytes(rb)
		return x + y, ok
	}, true
}

func tcpInfoBytes(rc syscall.RawConn) (uint64, bool) {
	var info *unix.TCPInfo
	var serr error
	err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err != nil || serr != nil {
		return 0, false
	}
	return info.Bytes_received + info.Bytes_acked, true
}

// tcpInfoHasBytes reports whether the kernel fills tcpi_bytes_acked and
// tcpi_bytes_received (Linux 4.1 and later). An older kernel returns a
// shorter struct and the fields would read as zero forever, which would
// make every connection look idle.
var tcpInfoHasBytes = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	major, minor, ok := kernelVersion(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > 4 || major == 4 && minor >= 1)
})

// kernelVersion parses the leading "MAJOR.MINOR" of a release string such
// as "6.1.0-18-amd64".
func kernelVersion(release string) (major, minor int, ok bool) {
	maj, rest, found := strings.Cut(release, ".")
	if !found {
		return 0, 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		rest = rest[:end]
	}
	major, err1 := strconv.Atoi(maj)
	minor, err2 := strconv.Atoi(rest)
	return major, minor, err1 == nil && err2 == nil
}
