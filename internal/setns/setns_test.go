//go:build linux

package setns

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// inode is the namespace inode of an open namespace descriptor.
func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDo: fn runs in the target namespace, and the caller's thread stays
// in its own.
func TestDo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: needs the ip command (iproute2)")
	}
	name := fmt.Sprintf("fulcrum-setns-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(target)
	here, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(here)

	var inside uint64
	if err := Do(target, func() error {
		fd, err := Current()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		inside = inode(t, fd)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := inode(t, target); inside != want {
		t.Errorf("fn ran in namespace %d, want the target's %d", inside, want)
	}
	after, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(after)
	if got, want := inode(t, after), inode(t, here); got != want {
		t.Errorf("the caller is in namespace %d after Do, want its own %d", got, want)
	}
	if err := Do(-1, func() error { return nil }); err == nil {
		t.Error("Do with a bad descriptor succeeded")
	}
}
