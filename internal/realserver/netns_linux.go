package realserver

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrStaleState is wrapped by LoadState's error for a state file written
// in a network namespace that no longer exists (one whose inode a new
// namespace now has): nothing it records is there to undo.
var ErrStaleState = errors.New("stale state: written in a network namespace that no longer exists")

// netnsInode identifies a network namespace by the inode of its file.
// The kernel gives the inode of a namespace that is gone to new ones.
func netnsInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	return st.Ino, nil
}

// netnsCookie is the calling thread's network namespace's cookie
// (SO_NETNS_COOKIE, Linux 5.14), unique while the machine runs; 0 when
// the kernel has none.
func netnsCookie() uint64 {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0
	}
	return v
}

// thisNetns fills in st's namespace identity.
func thisNetns(st *State) {
	st.Netns, _ = netnsInode("/proc/thread-self/ns/net")
	st.NetnsCookie = netnsCookie()
}

// checkNetns refuses a state written in another network namespace: its
// changes are not this one's to undo or check.
func checkNetns(st *State, path string) error {
	self, err := netnsInode("/proc/thread-self/ns/net")
	if err != nil || st.Netns == 0 {
		return nil
	}
	if st.Netns != self {
		return fmt.Errorf("realserver: state %s was written in network namespace net:[%d], this is net:[%d]: give this one's with --state", path, st.Netns, self)
	}
	if c := netnsCookie(); c != 0 && st.NetnsCookie != 0 && c != st.NetnsCookie {
		return fmt.Errorf("realserver: %s: %w", path, ErrStaleState)
	}
	return nil
}
