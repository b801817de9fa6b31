//go:build linux

package xdplink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// lab is a namespace with a veth pair, dev0 and dev1, both up: a veth
// takes native XDP as well as generic.
type lab struct {
	ns      string
	ifindex int
}

func newLab(t *testing.T) *lab {
	t.Helper()
	netns.Require(t)
	ns := fmt.Sprintf("fulcrum-xdplink-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	netns.Add(t, ns)
	netns.IP(t, "-n", ns, "link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
	netns.IP(t, "-n", ns, "link", "set", "dev0", "up")
	netns.IP(t, "-n", ns, "link", "set", "dev1", "up")
	l := &lab{ns: ns}
	l.do(t, func() error {
		ifc, err := net.InterfaceByName("dev0")
		if err == nil {
			l.ifindex = ifc.Index
		}
		return err
	})
	return l
}

func (l *lab) do(t *testing.T, fn func() error) {
	t.Helper()
	if err := netns.Do(l.ns, fn); err != nil {
		t.Fatal(err)
	}
}

// try runs fn in the lab's namespace and returns its error.
func (l *lab) try(fn func() error) error { return netns.Do(l.ns, fn) }

// passProgram loads an XDP program named name that passes every packet.
func passProgram(t *testing.T, name string) (*ebpf.Program, ebpf.ProgramID) {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		t.Skipf("cannot load an XDP program: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	id, err := ProgramID(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, id
}

// attached is what the kernel reports on dev0.
func (l *lab) attached(t *testing.T) (ebpf.ProgramID, Mode) {
	t.Helper()
	var id ebpf.ProgramID
	var m Mode
	l.do(t, func() (err error) { id, m, err = Attached(l.ifindex); return err })
	return id, m
}

// TestAttachDetach: each mode attaches (auto: native, which a veth has),
// Attached reports the program and mode, Detach removes it, and a second
// Detach, or one on an interface that is gone, is no error.
func TestAttachDetach(t *testing.T) {
	l := newLab(t)
	prog, id := passProgram(t, "xdplink_a")
	for _, tc := range []struct{ mode, want Mode }{{Native, Native}, {Generic, Generic}, {Auto, Native}} {
		var got Mode
		l.do(t, func() (err error) { got, err = Attach(l.ifindex, prog, tc.mode, nil); return err })
		if got != tc.want {
			t.Errorf("Attach(%s) got %s, want %s", tc.mode, got, tc.want)
		}
		if gotID, m := l.attached(t); gotID != id || m != tc.want {
			t.Errorf("after Attach(%s) the kernel has program %d in %s, want %d in %s", tc.mode, gotID, m, id, tc.want)
		}
		l.do(t, func() error { return Detach(l.ifindex, id) })
		if gotID, _ := l.attached(t); gotID != 0 {
			t.Errorf("after Detach program %d is attached", gotID)
		}
		l.do(t, func() error { return Detach(l.ifindex, id) })
	}
	if err := l.try(func() error { _, err := Attach(l.ifindex, prog, Mode(9), nil); return err }); err == nil {
		t.Error("Attach in Mode(9) succeeded")
	}

	l.do(t, func() error { _, err := Attach(l.ifindex, prog, Generic, nil); return err })
	netns.IP(t, "-n", l.ns, "link", "del", "dev0")
	l.do(t, func() error { return Detach(l.ifindex, id) })
	if err := l.try(func() error { _, err := Attach(l.ifindex, prog, Auto, nil); return err }); err == nil {
		t.Error("Attach to a deleted interface succeeded")
	}
}

// TestAttachReplace: a program on the interface stays unless replace
// accepts its id, and then goes in either mode; Detach leaves a program
// other than the one named.
func TestAttachReplace(t *testing.T) {
	l := newLab(t)
	a, idA := passProgram(t, "xdplink_a")
	b, idB := passProgram(t, "xdplink_b")
	l.do(t, func() error { _, err := Attach(l.ifindex, a, Generic, nil); return err })

	for name, replace := range map[string]func(ebpf.ProgramID) bool{
		"nil":     nil,
		"refuses": func(ebpf.ProgramID) bool { return false },
	} {
		for _, m := range []Mode{Auto, Native, Generic} {
			err := l.try(func() error { _, err := Attach(l.ifindex, b, m, replace); return err })
			if !errors.Is(err, ErrOtherProgram) || !strings.Contains(err.Error(), `"xdplink_a"`) {
				t.Errorf("replace %s, %s: Attach over another program: %v, want ErrOtherProgram naming it", name, m, err)
			}
			if id, got := l.attached(t); id != idA || got != Generic {
				t.Fatalf("replace %s, %s: the kernel has program %d in %s, want %d in generic", name, m, id, got, idA)
			}
		}
	}

	var asked ebpf.ProgramID
	replace := func(id ebpf.ProgramID) bool { asked = id; return ProgramName(id) == "xdplink_a" }
	l.do(t, func() error { _, err := Attach(l.ifindex, b, Native, replace); return err })
	if asked != idA {
		t.Errorf("replace was asked about %d, want %d", asked, idA)
	}
	if id, got := l.attached(t); id != idB || got != Native {
		t.Errorf("after the replacing Attach the kernel has %d in %s, want %d in native", id, got, idB)
	}

	err := l.try(func() error { return Detach(l.ifindex, idA) })
	if !errors.Is(err, ErrOtherProgram) {
		t.Errorf("Detach of a replaced program: %v, want ErrOtherProgram", err)
	}
	if id, _ := l.attached(t); id != idB {
		t.Errorf("Detach of the replaced program removed the new one: the kernel has %d", id)
	}
	l.do(t, func() error { return Detach(l.ifindex, idB) })
	if id, _ := l.attached(t); id != 0 {
		t.Errorf("after Detach the kernel has %d", id)
	}
}
