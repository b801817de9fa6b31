//go:build linux

package xdp

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/fulcrum-lb/fulcrum/internal/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// TestAttachOutlivesAndReplaces: the program is attached over netlink, so
// the attachment is the interface's, not the process's: a second Program
// (a restarted fulcrum) replaces the first's, in the other mode too; the
// first's Close then leaves the second's alone; a program that is not
// fulcrum's is never replaced.
func TestAttachOutlivesAndReplaces(t *testing.T) {
	requireNetns(t)
	ns := vethPair(t)
	load := func() *Program {
		t.Helper()
		p, err := Load(Options{MaxServices: 2, MaxSlots: 4, FlowTableSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	attach := func(p *Program, m AttachMode) error {
		return netns.Do(ns[0], func() error { _, err := p.Attach("dir0", m); return err })
	}

	old := load()
	must(t, attach(old, AttachGeneric))
	// The old process "died": its program stays. The new one takes over
	// the interface in native mode.
	restarted := load()
	must(t, attach(restarted, AttachNative))
	if k := kernelXDP(t, ns[0], "dir0"); k != "native" {
		t.Fatalf("after the restarted program's attach the kernel has %q, want native", k)
	}
	must(t, old.Close())
	if k := kernelXDP(t, ns[0], "dir0"); k != "native" {
		t.Errorf("the old program's Close removed the new one: the kernel has %q", k)
	}
	must(t, restarted.Close())
	if k := kernelXDP(t, ns[0], "dir0"); k != "" {
		t.Errorf("after Close the kernel has a %s program", k)
	}

	// Somebody else's program stays.
	other, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "not_fulcrum", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	must(t, err)
	t.Cleanup(func() { other.Close() })
	must(t, netns.Do(ns[0], func() error {
		l, err := netlink.LinkByName("dir0")
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, other.FD(), nl.XDP_FLAGS_SKB_MODE)
	}))
	p := load()
	if err := attach(p, AttachAuto); err == nil || !strings.Contains(err.Error(), "not_fulcrum") {
		t.Errorf("Attach over another program: %v, want a refusal naming it", err)
	}
	if k := kernelXDP(t, ns[0], "dir0"); k != "generic" {
		t.Errorf("the other program is gone: the kernel has %q", k)
	}
}
